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


def prepare_data(cfg):
    source = read_source(cfg.data)
    if not training_samples(source):
        raise PixelforgeError(f"{source.origin}: no training images (a train/ split is empty)")
    return source, list(source.classes)


def real_features_key(samples, img_size: int, channels: int, extractor) -> dict:
    """What identifies a set of real features: the files (paths and sizes), the decoding and the extractor."""
    listing = "\n".join(f"{s.path}:{s.path.stat().st_size}" for s in samples)
    return {"files": hashlib.sha256(listing.encode()).hexdigest(), "n": len(samples), "img_size": img_size,
            "channels": channels, "extractor": extractor.name,
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
    extractor = build_extractor(cfg.fid_weights).to(fabric.device)
    reference = reference_samples(source, cfg.fid_n, cfg.seed)
    real_features = reference_features(reference, classes, cfg.img_size, channels, extractor, progress)
    model = build_gan(cfg, channels, len(classes)).to(fabric.device)
    step = GANStep(model, cfg, len(classes), extractor, real_features, mean_pairwise_distance(real_features))
    progress.info(f"GAN: {'class-conditional ' if cfg.conditional else ''}DCGAN {cfg.img_size}px x {channels} "
                  f"channel(s), {cfg.loss} loss, EMA {cfg.ema_decay}; validation FID on {len(reference)} real vs "
                  f"{len(reference)} generated images with {extractor.name} features")
    return TaskSetup(
        task=step, model=model, trained=model, train_data=train.pairs(), val_data=[],
        n_train=len(train), n_val=len(reference), hooks=[EpochGrid(step)],
        extra_checkpoint={"classes": classes, "task": "gan", "channels": channels, "img_size": cfg.img_size,
                          "latent_dim": cfg.latent_dim, "conditional": cfg.conditional, "width": cfg.width},
    )
