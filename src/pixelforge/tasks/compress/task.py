"""Compression as an engine task: the image folder split, the CompressAI model (fresh, or a parent run's weights
with `continue_from`) and the step (step.py)."""

from __future__ import annotations

from pixelforge.engine.setup import TaskSetup
from pixelforge.runs import folder as rd
from pixelforge.tasks.common.run import read_run
from pixelforge.tasks.compress.config import CompressConfig
from pixelforge.tasks.compress.data import CropDataset, split_images
from pixelforge.tasks.compress.models import build_model, downsampling
from pixelforge.tasks.compress.step import CompressionStep
from pixelforge.tasks.config import load_config
from pixelforge.errors import PixelforgeError


def check_config(cfg) -> None:
    if cfg.continue_from:  # first: with another --model, its crop-size rule was refused before the model itself
        check_parent(cfg)
    step = downsampling(cfg.model)
    if cfg.img_size % step:
        raise PixelforgeError(f"img_size {cfg.img_size}: the {cfg.model} model needs crops whose side is a "
                              f"multiple of {step} (e.g. {max(step, cfg.img_size // step * step)})")


ARCHITECTURE = ("model", "channels_n", "channels_m")


def check_parent(cfg) -> None:
    """`continue_from` must name a compression run whose weights fit this run's model (keys not given are the
    parent's, so only an explicit `--model` or `--channels-*` can differ)."""
    parent = load_config(rd.require_run(cfg.continue_from) / "config.yaml")
    if not isinstance(parent, CompressConfig):
        raise PixelforgeError(f"{cfg.continue_from}: continue_from needs a compression run, not a {parent.task!r} run")
    if parent.model != cfg.model:
        raise PixelforgeError(f"{cfg.continue_from}: trained with model {parent.model!r}, not {cfg.model!r}; a "
                              f"continued run keeps the parent's model (leave --model out)")
    differ = [f"{key} {getattr(parent, key)} there, {getattr(cfg, key)} here" for key in ARCHITECTURE
              if getattr(parent, key) != getattr(cfg, key)]
    if differ:
        raise PixelforgeError(f"{cfg.continue_from}: its weights do not fit this model ({'; '.join(differ)}); "
                              f"leave those keys out to take the parent's")


def prepare_data(cfg) -> tuple:
    return split_images(cfg.data, cfg.val_fraction, cfg.seed), []


def build_setup(cfg, source, classes, fabric, progress) -> TaskSetup:
    model, optimizer_states = build_model(cfg), None
    if cfg.continue_from:  # best: the parent's best weights, fresh optimizers; last: where it stopped, Adam and all
        saved = read_run(cfg.continue_from, "compress", f"{cfg.continue_checkpoint}.ckpt")[3]
        model.load_state_dict(saved["model"])
        optimizer_states = saved["optimizers"] if cfg.continue_checkpoint == "last" else None
        progress.info(f"starting from {cfg.continue_from}'s {cfg.continue_checkpoint}.ckpt"
                      f"{' and its optimizer state' if optimizer_states else ''}")
    model = model.to(fabric.device)
    advance, close = progress.counter("decoding images", len(source["train"]) + len(source["val"]))
    train = CropDataset(source["train"], cfg.img_size, cfg.crops_per_image, train=True, progress=advance)
    val = CropDataset(source["val"], cfg.img_size, 1, train=False, progress=advance)
    close()
    for name, crops in (("train", train), ("val", val)):
        if not len(crops):
            raise PixelforgeError(f"{cfg.data}: no readable images in the {name} split ({crops.unreadable[0]})")
    step = CompressionStep(model, cfg.lambda_, cfg.aux_lr, cfg.grad_clip, cfg.schedule, optimizer_states)
    return TaskSetup(task=step, model=model, trained=model, train_data=train, val_data=val,
                     # Images, not crops: summary.json's train_images said 884 for 221 photos at 4 crops each.
                     n_train=len(train.images), n_val=len(val.images),
                     train_unit=f"images ({len(train)} crops an epoch)",
                     workers=0 if cfg.workers is None else cfg.workers,
                     unreadable=train.unreadable + val.unreadable)
