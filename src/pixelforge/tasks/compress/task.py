"""Compression as an engine task: the image folder split, the CompressAI model and the step (step.py)."""

from __future__ import annotations

from pixelforge.engine.setup import TaskSetup
from pixelforge.tasks.compress.data import CropDataset, split_images
from pixelforge.tasks.compress.models import build_model, downsampling
from pixelforge.tasks.compress.step import CompressionStep
from pixelforge.errors import PixelforgeError


def check_config(cfg) -> None:
    step = downsampling(cfg.model)
    if cfg.img_size % step:
        raise PixelforgeError(f"img_size {cfg.img_size}: the {cfg.model} model needs crops whose side is a "
                              f"multiple of {step} (e.g. {max(step, cfg.img_size // step * step)})")


def prepare_data(cfg) -> tuple:
    return split_images(cfg.data, cfg.val_fraction, cfg.seed), []


def build_setup(cfg, source, classes, fabric, progress) -> TaskSetup:
    model = build_model(cfg).to(fabric.device)
    train = CropDataset(source["train"], cfg.img_size, cfg.crops_per_image, train=True)
    val = CropDataset(source["val"], cfg.img_size, 1, train=False)
    step = CompressionStep(model, cfg.lambda_, cfg.aux_lr, cfg.grad_clip)
    return TaskSetup(task=step, model=model, trained=model, train_data=train, val_data=val,
                     n_train=len(train), n_val=len(val))
