"""What a task hands the engine: the model, its data, and how to optimise it.

Every task module (`pixelforge.tasks.classify.task`, `.detection`, `.segmentation`) turns a config and its data
into a `TaskSetup`; the engine (`engine/train.py`) owns everything after that — Fabric, the optimizer and schedule,
the loop, checkpoints, resume and interruption — the same way for every task.

The `task` object is duck-typed (no base class):
    monitor: str                                  the validation metric that decides best.ckpt (higher is better)
    training_step(model, batch) -> dict           {"loss": scalar tensor, "count": images, + optional sums}
    validate(model, batches, fabric) -> dict      validation metrics ("val_loss", monitor, ...) as floats
    freeze_frozen_norms(model)                    optional: keep frozen batch-norm layers in eval mode
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from pixelforge.engine.threads import single_threaded_collate


@dataclass
class TaskSetup:
    task: object
    model: nn.Module  # what checkpoints hold: always the full model
    trained: nn.Module  # what the optimizer updates (the model, or only its head on cached features)
    train_data: Dataset
    val_data: Dataset
    param_groups: Callable[[float], list[dict]]  # lr -> optimizer parameter groups
    n_train: int
    n_val: int
    collate_fn: Callable = single_threaded_collate
    workers: int = 0
    path: str = "end-to-end"  # how it trains, for the log and summary ("cached-features" or "end-to-end")
    channels_last: bool = False
    on_epoch_start: Callable[[int], None] | None = None  # e.g. gradual unfreezing
    extra_checkpoint: dict = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    train_samples: list | None = None  # per-image records for a re-weighted sampler (classification's --balance)
    write_report: Callable[[Path], Path] | None = None  # after training: evaluate best.ckpt, write report.html
