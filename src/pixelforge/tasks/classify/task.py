"""Image classification as an engine task: its steps, its loss, its data and the setup the engine trains.

Fine-tuning strategies (`linear`, `full`, `gradual`) are models/finetune.py's, acting on the classifier's backbone;
`linear` alone takes a faster exact path here: the head trains on cached backbone features.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F

from pixelforge.errors import PixelforgeError
from pixelforge.models.finetune import apply_strategy, freeze_frozen_norms, param_groups
from pixelforge.tasks.classify.data import prepare_data  # noqa: F401 - where the other modules import it from


class ClassificationTask:
    def __init__(self, label_smoothing: float = 0.0, mixer=None, forward=None):
        self.label_smoothing = label_smoothing
        self.mixer = mixer  # MixUp/CutMix on whole batches (soft targets), or None
        # forward(model, x) -> logits: the eager call, or engine/compiled.py's compiled training step
        self.forward = forward or (lambda model, x: model(x))

    def training_step(self, model: nn.Module, batch) -> dict:
        x, y = batch
        hard = y
        if self.mixer is not None:
            x, y = self.mixer(x, y)
        logits = self.forward(model, x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        hits = (logits.argmax(1) == hard).sum()
        # A batch mean, logged as train_acc; float64 (where the device has it) so that mean x count, summed by the
        # engine, is exactly the hit count.
        acc = hits.to(torch.float32 if hits.device.type == "mps" else torch.float64) / len(hard)
        return {"loss": loss, "acc": acc, "count": len(hard)}

    monitor = "val_acc"

    def validation_step(self, model: nn.Module, batch) -> dict:
        x, y = batch
        logits = model(x)
        return {"loss": F.cross_entropy(logits, y), "correct": (logits.argmax(1) == y).sum(), "count": len(y)}

    def validate(self, model: nn.Module, batches, fabric) -> dict:
        sums = torch.zeros(3, dtype=torch.float64)
        for batch in batches:
            out = self.validation_step(model, batch)
            sums += torch.tensor([float(out["loss"]) * float(out["count"]), float(out["correct"]), float(out["count"])],
                                 dtype=torch.float64)
        sums = fabric.all_reduce(sums.to(fabric.device), reduce_op="sum").cpu()
        return {"val_loss": float(sums[0] / max(sums[2], 1)), "val_acc": float(sums[1] / max(sums[2], 1))}

    # The engine calls it after `model.train()`: frozen batch-norm layers keep their statistics.
    freeze_frozen_norms = staticmethod(freeze_frozen_norms)


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return float((logits.topk(k, dim=1).indices == targets[:, None]).any(1).float().mean())


def build_setup(cfg, source, classes: list[str], fabric, progress):
    """Decode the images once, build the classifier, and pick the fastest exact path for the strategy.

    A frozen backbone (`linear`) trains the head on cached features (several augmented views per image, computed
    once); otherwise the whole model trains end to end.
    """
    from pixelforge.data.transforms import batch_mixer, resolve_augment
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import default_workers
    from pixelforge.models.classifier import build_classifier
    from pixelforge.tasks.classify.balance import build_train_sampler
    from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

    model = build_classifier(cfg.model, len(classes), cfg.weights, cfg.dropout)
    augment = resolve_augment(cfg.augment, cfg.augment_options)
    train_set, val_set, unreadable = _decoded_datasets(cfg, source, classes, model.spec, augment, progress)
    workers = default_workers() if cfg.workers is None else cfg.workers
    use_features = cfg.strategy == "linear" and cfg.cache_features is not False and fabric.world_size == 1
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(fabric.device)

    extraction_seconds = None
    if use_features:
        started = time.perf_counter()
        train_data, val_data = _cached_features(cfg, model, train_set, val_set, workers, fabric, progress)
        extraction_seconds = round(time.perf_counter() - started, 3)
        progress.info(f"features of {len(train_set)} training images ({cfg.feature_views} view(s) each) and {len(val_set)} "
                      f"validation images in {extraction_seconds:.1f} s; the head trains on them (head img/s below)")
        trained, loader_workers = model.head, 0  # feature vectors are already in memory
    else:
        train_data, val_data, trained, loader_workers = train_set, val_set, model, workers

    for param in model.parameters():  # everything registered with DDP; the strategy freezes below
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    forward, path = (None, "cached-features") if use_features else _end_to_end_path(cfg, model, fabric, progress)
    hooks = []
    if cfg.strategy == "gradual" and not use_features:
        hooks.append(gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "backbone"))

    return TaskSetup(
        task=ClassificationTask(cfg.label_smoothing, None if use_features else batch_mixer(augment, len(classes)),
                                forward),
        model=model, trained=trained, train_data=train_data, val_data=val_data,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        n_train=len(train_set), n_val=len(val_set), workers=loader_workers,
        val_batch_size=max(cfg.batch_size, 64),  # inference holds no activations for backward: bigger is faster
        path=path, speed_column="head_images_per_s" if use_features else "images_per_s",
        feature_extraction_seconds=extraction_seconds,
        channels_last=cfg.channels_last and not use_features, hooks=hooks,
        extra_checkpoint={"classes": classes}, unreadable=unreadable,
        train_sampler=build_train_sampler(cfg, train_set.samples, len(train_data), fabric.global_rank,
                                          fabric.world_size),
    )


def _decoded_datasets(cfg, source, classes: list[str], spec, augment, progress):
    """The train and val images decoded once into RAM at the backbone's resize; (train, val, unreadable)."""
    from pixelforge.data.dataset import ImageDataset
    from pixelforge.data.transforms import decode_size, eval_transform, train_transform
    from pixelforge.engine.threads import single_threaded

    short_side = decode_size(cfg.img_size, spec.crop_pct)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    train_set = ImageDataset(source.split("train"), class_to_idx, short_side,
                             train_transform(cfg.img_size, spec.mean, spec.std, augment))
    val_set = ImageDataset(source.split("val"), class_to_idx, short_side, eval_transform(cfg.img_size, spec.mean, spec.std))
    advance, close = progress.counter("decoding images", len(train_set) + len(val_set))
    unreadable = (train_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance)
                  + val_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance))
    close()
    lost = sorted({s.label for s in source.split("train")} - {s.label for s in train_set.samples})
    if lost:  # prepare_data's "no training images" again, now that the broken files are out: else a class never seen
        example = next(e for e in unreadable if any(e.startswith(f"{s.path}:") for s in source.split("train")
                                                    if s.label == lost[0]))
        raise PixelforgeError(f"{source.origin}: class {lost[0]!r} has no readable training image ({example}); "
                              "replace its files or remove the class")
    if not val_set.samples:  # else feature caching or the report stops on an empty batch
        example = next(e for e in unreadable if any(e.startswith(f"{s.path}:") for s in source.split("val")))
        raise PixelforgeError(f"{source.origin}: no readable image in the val split ({example}); replace its files")
    # Per-image transforms run on one thread (engine/threads.py: 3-50x faster on few cores); the model uses all.
    train_set.transform, val_set.transform = single_threaded(train_set.transform), single_threaded(val_set.transform)
    return train_set, val_set, unreadable


def _cached_features(cfg, model, train_set, val_set, workers: int, fabric, progress):
    """The frozen backbone's features of `feature_views` augmented views per training image, and of val once."""
    from pixelforge.tasks.classify.features import (FeatureDataset, FeatureExtractor, extract_features,
                                                    feature_batch_size)

    progress.info(f"linear strategy: caching backbone features for {cfg.feature_views} augmented views per image")
    extractor = FeatureExtractor(model.backbone, fabric.device, cfg.channels_last)
    advance, close = progress.counter("extracting features", len(train_set) * cfg.feature_views + len(val_set))
    batch = feature_batch_size(fabric.device)
    train_x, train_y = extract_features(model.backbone, train_set, cfg.feature_views, batch, workers,
                                        extractor=extractor, progress=advance)
    val_x, val_y = extract_features(model.backbone, val_set, 1, batch, workers, extractor=extractor,
                                    progress=advance)
    close()
    extractor.close()
    progress.info(f"backbone features computed by {extractor.name} ({extractor.reason})")
    return FeatureDataset(train_x, train_y), FeatureDataset(val_x, val_y, list(val_set.samples))


def _end_to_end_path(cfg, model, fabric, progress):
    """Exact speed-ups for end-to-end training, and torch.compile when asked and worth it: (forward, path)."""
    from pixelforge.engine.compiled import CompiledTrainingForward, compile_decision
    from pixelforge.engine.exact_speedups import apply_exact_speedups

    progress.detail(apply_exact_speedups(model, depthwise_fp32=cfg.precision == "bf16-mixed" and fabric.device.type == "cpu"))
    compiled, reason = compile_decision(cfg.compile, strategy=cfg.strategy, world_size=fabric.world_size)
    if cfg.compile:
        progress.info(f"torch.compile {reason}")
    if compiled:
        return CompiledTrainingForward(cfg.batch_size), "end-to-end, compiled"
    return None, "end-to-end"
