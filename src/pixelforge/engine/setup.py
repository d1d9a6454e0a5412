"""What a task hands the engine: the model, its data, how to optimise it, and its hooks.

Every task module (`pixelforge.tasks.classify.task`, `detect.task`, `segment.task`, `instance.task`) turns a config
and its data into a `TaskSetup`; the engine (`engine/fit.py`) owns everything after that — Fabric, the optimizers
and schedules, the loop, checkpoints, resume and interruption — the same way for every task.

The `task` object is duck-typed (no base class); only the first three are required:
    monitor: str                         the validation metric that decides best.ckpt (and early stopping)
    validate(model, batches, fabric)     -> {monitor: ..., "val_loss" if it has one, ...} floats, reduced over processes:
                                         each process gets its own share of the images, none twice, and may run
                                         one batch more than another, so call every collective once, at the end
    training_step(model, batch)          -> {"loss": scalar tensor, "count": samples, + any scalars (batch means)};
                                         every scalar is logged as train_<key> (engine/step_sums.py)
    monitor_mode: "max" | "min"          whether a larger monitor is better (default "max")
    automatic_optimization: bool         False: training_step(model, batch, ctx) gets a `loop.StepContext` with
                                         the named optimizers, `backward`, `clip`, and steps them itself
    configure_optimizers(lr, total_steps, warmup_steps) -> {name: (optimizer, scheduler or None)}
                                         default: one AdamW/SGD over `TaskSetup.param_groups(lr)`, named "main"
    transfer_batch(batch, fabric)        the batch on the device (default: Fabric's move of any nesting)
    state_dict() / load_state_dict(s)    the task's own state (an EMA model, a replay buffer), checkpointed
    freeze_frozen_norms(model)           keep frozen batch-norm layers in eval mode after `model.train()`
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from pixelforge.engine.samplers import EpochSampler
from pixelforge.engine.threads import single_threaded_collate


@dataclass
class TaskSetup:
    task: object
    model: nn.Module  # what checkpoints hold: always the full model
    # What the optimizers update: the model, or only its head on cached features; or {optimizer name: module} for
    # players with their own optimizers (a GAN), each set up by Fabric (DDP) on its own, handed to the step as an
    # `nn.ModuleDict` of the wrapped modules (engine/fit.py `_setup_trained`).
    trained: nn.Module | dict[str, nn.Module]
    train_data: Dataset
    val_data: Dataset
    n_train: int
    n_val: int
    train_unit: str = "images"  # what n_train counts, for the log: a captioner trains on captions, several an image
    param_groups: Callable[[float], list[dict]] | None = None  # lr -> parameter groups for the default optimizer
    # (lr, total_steps, warmup_steps) -> {name: (optimizer, scheduler or None)}; the task's own method wins
    configure_optimizers: Callable | None = None
    collate_fn: Callable = single_threaded_collate
    workers: int = 0
    val_batch_size: int | None = None  # default: the training batch size
    path: str = "end-to-end"  # how it trains, for the log and summary ("cached-features" or "end-to-end")
    # Steps that run only a head on precomputed features: the metrics.csv column of the loop's speed says so
    # ("head_images_per_s"), and the seconds spent computing the features go to summary.json, whose images_per_s
    # counts them: the speed of what the user waited for.
    speed_column: str = "images_per_s"
    feature_extraction_seconds: float | None = None
    channels_last: bool = False
    hooks: list = field(default_factory=list)  # e.g. gradual unfreezing (engine/hooks.py)
    extra_checkpoint: dict = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    # The training order, when not the default EpochSampler (e.g. classification's re-weighted --balance); it
    # must have set_position(epoch, skip) for resume, and shard (with padding) across fabric's processes.
    train_sampler: EpochSampler | None = None
