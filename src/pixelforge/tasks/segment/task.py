"""Semantic segmentation as an engine task: data, model, per-pixel loss, mIoU validation and fine-tuning strategies.

The engine (engine/train.py) calls `prepare_data`, then `build_setup`, trains, and has the task write its report (report.py). The task
validates on the val crops with one confusion matrix summed over batches (and over processes under DDP), so
`val_miou`, the metric that picks best.ckpt, is the exact dataset-level mIoU, not a mean of per-batch values.

Fine-tuning strategies are models/finetune.py's, as for every task: they act on the segmenter's encoder, and the
decoder and head, being new, always learn.
"""

from __future__ import annotations


import torch
from torch import nn

from pixelforge.errors import PixelforgeError
from pixelforge.metrics.segmentation import ConfusionMatrix
from pixelforge.models.finetune import apply_strategy, freeze_frozen_norms, param_groups
from pixelforge.tasks.segment.losses import build_segmentation_loss

DEFAULT_ARCH = "unet"


class SegmentationTask:
    monitor = "val_miou"
    # The engine calls it after `model.train()`: a frozen encoder keeps its batch-norm statistics.
    freeze_frozen_norms = staticmethod(freeze_frozen_norms)

    def __init__(self, loss: nn.Module, num_classes: int, ignore_index: int = 255):
        self.loss, self.num_classes, self.ignore_index = loss, num_classes, ignore_index

    def training_step(self, model: nn.Module, batch) -> dict:
        images, masks = batch
        count = images.shape[0]
        if count == 1:
            # Atrous pyramid pooling (DeepLab) batch-normalises a 1x1 pooled map, which fails on a batch of one;
            # the last batch of an epoch can be that small. Two copies give the same loss.
            images, masks = images.repeat(2, 1, 1, 1), masks.repeat(2, 1, 1)
        logits = model(images)
        loss = self.loss.to(logits.device)(logits, masks)
        with torch.no_grad():
            # Summed per-image pixel accuracy, so the engine's sum / count is the mean over images ("train_acc").
            scored = masks[:count] != self.ignore_index
            hits = ((logits[:count].argmax(1) == masks[:count]) & scored).flatten(1).sum(1)
            correct = (hits / scored.flatten(1).sum(1).clamp_min(1)).sum()
        return {"loss": loss, "correct": correct, "count": count}

    @torch.no_grad()
    def validate(self, model: nn.Module, batches, fabric) -> dict:
        matrix = ConfusionMatrix(self.num_classes, self.ignore_index, device=fabric.device)
        # The loss of each image on its own, averaged over the images with a scored pixel: a batch's loss (Dice
        # over the batch, a mean over its pixels) depended on which images shared a batch, so on the batch size
        # and, under DDP, on how the images were split between the processes.
        sums = torch.zeros(2, dtype=torch.float64, device=fabric.device)  # sum of the images' losses, images
        for images, masks in batches:
            logits = model(images)
            loss = self.loss.to(logits.device)
            for one_logits, one_mask in zip(logits, masks):
                if bool((one_mask != self.ignore_index).any()):
                    sums += torch.tensor([float(loss(one_logits[None], one_mask[None])), 1.0], dtype=torch.float64,
                                         device=fabric.device)
            matrix.update(logits.argmax(1), masks)
        total = fabric.all_reduce(matrix.matrix, reduce_op="sum")
        sums = fabric.all_reduce(sums, reduce_op="sum").cpu()
        scores = ConfusionMatrix(self.num_classes, self.ignore_index)
        scores.matrix = total.cpu().long()
        result = scores.compute()
        return {"val_loss": float(sums[0] / max(float(sums[1]), 1.0)), "val_miou": result["miou"] or 0.0,
                "val_pixel_accuracy": result["pixel_accuracy"] or 0.0}


def prepare_data(cfg):
    """Read and check the masks, give every image a split; the classes are the source's (index = mask value)."""
    from pixelforge.data.masks.source import make_mask_splits, read_masks

    data = cfg.data
    if data == "shapes":
        from pixelforge.data.builtin import materialize

        data = str(materialize("shapes", kind="masks"))
    source = read_masks(data, ignore_index=cfg.ignore_index)
    source = make_mask_splits(source, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if not source.split("train") or not source.split("val"):
        raise PixelforgeError(f"{source.origin}: need images in both train and val splits "
                              f"(found {len(source.split('train'))} train, {len(source.split('val'))} val)")
    if len(source.classes) < 2:
        raise PixelforgeError(f"{source.origin}: segmentation needs at least 2 classes, found {source.classes}")
    if cfg.class_weights is not None and len(cfg.class_weights) != len(source.classes):
        raise PixelforgeError(f"class_weights has {len(cfg.class_weights)} values but {source.origin} has "
                              f"{len(source.classes)} classes ({', '.join(source.classes)}); give one per class")
    return source, list(source.classes)


def normalization(cfg, source, encoder_mean, encoder_std, in_channels: int) -> tuple[list[float], list[float], str]:
    """The input mean/std: the data's own for 1-channel or 16-bit images (`auto`), or the encoder's pretraining ones.

    Returns (mean, std, where they came from).
    """
    use_dataset = cfg.normalize == "dataset" or (cfg.normalize == "auto" and (source.channels == 1 or source.bit_depth > 8))
    if use_dataset:
        from pixelforge.data.masks.images import dataset_intensity_stats

        mean, std = dataset_intensity_stats(source.split("train"), channels=in_channels)
        mean, std = _fit_channels(list(mean), in_channels), _fit_channels(list(std), in_channels)
        return mean, [max(s, 1e-6) for s in std], "dataset"
    return _fit_channels(list(encoder_mean), in_channels), _fit_channels(list(encoder_std), in_channels), "encoder"


def _fit_channels(values: list[float], channels: int) -> list[float]:
    if len(values) == channels:
        return [float(v) for v in values]
    average = sum(values) / len(values)  # e.g. RGB ImageNet statistics for a grey input: their mean
    return [float(average)] * channels


def build_setup(cfg, source, classes: list[str], fabric, progress):
    """Build the segmenter and the decoded-once datasets for `cfg`, and how to optimise them."""
    from pixelforge.data.augment_options import MASK_KNOBS
    from pixelforge.data.masks.dataset import MaskDataset
    from pixelforge.data.masks.transforms import eval_mask_transform, train_mask_transform
    from pixelforge.engine.setup import TaskSetup
    from pixelforge.engine.threads import single_threaded
    from pixelforge.models.segmenters import build_segmenter

    in_channels = cfg.in_channels or source.channels
    arch = cfg.arch or DEFAULT_ARCH
    model = build_segmenter(arch, cfg.model, len(classes), in_channels, cfg.weights)
    mean, std, origin = normalization(cfg, source, model.mean, model.std, in_channels)
    progress.info(f"segmenter {arch} on {model.backbone_name}, {in_channels} input channel(s), "
                  f"normalised with the {origin}'s mean {[round(m, 3) for m in mean]} / std {[round(s, 3) for s in std]}")
    k, ignore = len(classes), cfg.ignore_index
    knobs = cfg.augment_options.model_dump(include=set(MASK_KNOBS)) if cfg.augment_options else None  # over the preset
    augment = single_threaded(train_mask_transform(cfg.img_size, cfg.augment, ignore, knobs))
    train_set = MaskDataset(source.split("train"), augment, mean, std, in_channels, short_side=cfg.img_size,
                            num_classes=k, ignore_index=ignore)
    val_set = MaskDataset(source.split("val"), single_threaded(eval_mask_transform(cfg.img_size)), mean, std,
                          in_channels, short_side=cfg.img_size, num_classes=k, ignore_index=ignore)
    advance, close = progress.counter("decoding images", len(train_set) + len(val_set))
    unreadable = (train_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance)
                  + val_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance))
    close()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(fabric.device)
    from pixelforge.engine.exact_speedups import apply_exact_speedups

    progress.detail(apply_exact_speedups(model, depthwise_fp32=cfg.precision == "bf16-mixed" and fabric.device.type == "cpu"))
    for param in model.parameters():  # everything registered with DDP; the strategy freezes below
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)

    from pixelforge.tasks.common.finetune import gradual_unfreezing_hook

    hooks = ([gradual_unfreezing_hook(model, cfg.unfreeze_every, progress.info, "encoder")]
             if cfg.strategy == "gradual" else [])

    loss = build_segmentation_loss(cfg.loss, len(classes), cfg.ignore_index, cfg.class_weights)
    from pixelforge.engine.threads import default_workers

    return TaskSetup(
        task=SegmentationTask(loss, len(classes), cfg.ignore_index), model=model, trained=model,
        train_data=train_set, val_data=val_set,
        param_groups=lambda lr: param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay),
        n_train=len(train_set), n_val=len(val_set), workers=default_workers() if cfg.workers is None else cfg.workers,
        channels_last=cfg.channels_last, hooks=hooks,
        extra_checkpoint={"classes": classes, "task": "segment", "arch": arch, "in_channels": in_channels,
                          "mean": mean, "std": std, "bit_depth": source.bit_depth, "ignore_index": cfg.ignore_index},
        unreadable=unreadable,
    )
