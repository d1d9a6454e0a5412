"""From a GAN config and its data to the engine's `TaskSetup`: decoded real images, the model, the FID reference."""

from __future__ import annotations

import hashlib
import math

import torch

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.gan.data import decode, read_source, reference_samples, to_uint8, training_samples


def check_config(cfg) -> None:
    size = cfg.img_size
    if size < 16 or 2 ** round(math.log2(size)) != size:
        raise PixelforgeError(f"--img-size {size}: a GAN generates square images of a power of two >= 16 "
                              f"(32, 64, 128)")
    native = cfg.native_size
    if native is not None and (native > size or 2 ** round(math.log2(native)) != native):
        raise PixelforgeError(f"--native-size {native}: the generator's drawing size must be a power of two "
                              f"between 8 and --img-size {size}")
    judge = cfg.d_size
    if judge is not None and (judge > size or 2 ** round(math.log2(judge)) != judge):
        raise PixelforgeError(f"--d-size {judge}: the discriminator's input size must be a power of two "
                              f"between 8 and --img-size {size}")


def judge_size(cfg, native: int) -> int:
    """The size the discriminator judges at: `--d-size`, else the generator's drawing size."""
    return cfg.d_size or native


def native_size(cfg) -> int:
    """The size the generator draws at: `--native-size`, else the data's own when it is known (the built-in
    digits are 8x8 pictures enlarged), else the image size."""
    from pixelforge.data.builtin import NATIVE_SIZES

    if cfg.native_size is not None:
        return cfg.native_size
    return min(NATIVE_SIZES.get(str(cfg.data), cfg.img_size), cfg.img_size)


def prepare_data(cfg):
    source = read_source(cfg.data, cfg.conditional)
    if not training_samples(source):
        raise PixelforgeError(f"{source.origin}: no training images (a train/ split is empty)")
    if len(source.samples) < 4:  # else the run trains, then its report fails (evaluate.py)
        raise PixelforgeError(f"{source.origin}: {len(source.samples)} image(s); a GAN run is scored by FID on two "
                              "disjoint sets of 2 or more real images, so give at least 4")
    return source, list(source.classes)


def real_features_key(samples, img_size: int, channels: int, extractor) -> dict:
    """What identifies a set of real features: the files (paths and sizes), the decoding and the extractor."""
    listing = "\n".join(f"{s.path}:{s.path.stat().st_size}" for s in samples)
    return {"files": hashlib.sha256(listing.encode()).hexdigest(), "n": len(samples), "img_size": img_size,
            "channels": channels, "extractor": extractor.name, "decoding": "load_rgb",
            "weights": getattr(extractor, "weights_file", None)}


def reference_features(samples, classes, img_size: int, channels: int, extractor, progress=None) -> torch.Tensor:
    """Features of real `samples`, cached once per (files, size, extractor)."""
    from pixelforge.tasks.gan.fid import cached_features, extract

    def compute():
        images = decode(samples, classes, img_size, channels).images
        advance = close = None
        if progress is not None:
            advance, close = progress.counter(f"real-image features ({extractor.name})", len(images))
        features = extract(extractor, to_uint8(images), progress=advance)
        if close is not None:
            close()
        return features

    features, _ = cached_features(real_features_key(samples, img_size, channels, extractor), compute)
    return features


def build_setup(cfg, source, classes: list[str], fabric, progress):
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.tasks.gan.data import grey
    from pixelforge.tasks.gan.fid import build_extractor, mean_pairwise_distance
    from pixelforge.tasks.gan.models import build_gan
    from pixelforge.tasks.gan.task import EpochGrid, GANStep

    train_samples = training_samples(source)
    channels = 1 if grey(train_samples) else 3
    train = decode(train_samples, classes, cfg.img_size, channels)
    if len(train) < 4 and train.unreadable:  # prepare_data counted files; the report needs 4 that decode
        raise PixelforgeError(f"{source.origin}: {len(train)} readable training image(s) ({train.unreadable[0]}); a "
                              "GAN run is scored by FID on two disjoint sets of 2 or more real images, so give at "
                              "least 4")
    lost = sorted({s.label for s in train_samples} - {classes[i] for i in set(train.labels.tolist())})
    if cfg.conditional and lost:  # else the generator is asked for a class it never saw
        paths = [f"{s.path}:" for s in train_samples if s.label == lost[0]]
        example = next((e for e in train.unreadable if e.startswith(tuple(paths))), "")
        raise PixelforgeError(f"{source.origin}: class {lost[0]!r} has no readable training image ({example}); "
                              "replace its files or remove the class")
    extractor = build_extractor(cfg.fid_weights).to(fabric.device)
    reference = reference_samples(source, cfg.fid_n, cfg.seed)
    real_features = reference_features(reference, classes, cfg.img_size, channels, extractor, progress)
    native = native_size(cfg)
    judge = judge_size(cfg, native)
    model = build_gan(cfg, channels, len(classes), native, judge).to(fabric.device)
    step = GANStep(model, cfg, len(classes), extractor, real_features, mean_pairwise_distance(real_features))
    drawn = f" (drawn at {native}px, enlarged bicubic)" if native < cfg.img_size else ""
    drawn += f", judged at {judge}px" if judge < cfg.img_size else ""
    progress.info(f"GAN: {'class-conditional ' if cfg.conditional else ''}DCGAN {cfg.img_size}px{drawn} x {channels} "
                  f"channel(s), {cfg.loss} loss, EMA {cfg.ema_decay}; validation FID on {len(reference)} real vs "
                  f"{len(reference)} generated images with {extractor.name} features")
    return TaskSetup(
        task=step, model=model, trained={"generator": model.generator, "discriminator": model.discriminator},
        train_data=train.pairs(), val_data=[],
        n_train=len(train), n_val=len(reference), hooks=[EpochGrid(step)],
        extra_checkpoint={"classes": classes, "task": "gan", "channels": channels, "img_size": cfg.img_size,
                          "latent_dim": cfg.latent_dim, "conditional": cfg.conditional, "width": cfg.width,
                          "native_size": native, "judge_size": judge,
                          "label_dim": cfg.label_dim},
        unreadable=train.unreadable,
    )
