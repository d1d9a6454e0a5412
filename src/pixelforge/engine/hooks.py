"""Hooks: code that runs at fixed points of a fit, without the loop knowing what it does (detectron2's lifecycle).

A hook is any object with some of these methods (duck-typed; `Hook` is an optional base with no-op methods):

    on_fit_start(ctx)                      once, before the first epoch (also when resuming)
    on_epoch_start(ctx)                    before an epoch's first batch (also when resuming mid-epoch)
    on_train_batch_end(ctx, outputs)       after each optimizer step; `outputs` is the dict the step returned
    on_validation_end(ctx, metrics)        after validation; `metrics` is the epoch's metrics.csv row
    on_fit_end(ctx)                        once, after the last epoch (not after an interruption)

`ctx` is a `HookContext`: the model, Fabric, the loop's state, the run folder, the task and the optimizers. A hook
ends training by raising `StopTraining`: the loop finishes the current batch (or the epoch's bookkeeping, when
raised from `on_validation_end`), writes last.ckpt and returns normally with `stopped_early` set. Under DDP every
process must decide alike (decide on reduced metrics, as `EarlyStopping` does), or the others wait forever.

A hook with `state_dict()` / `load_state_dict(state)` is checkpointed (under "hooks", by class name) and restored
on resume, so a patience counter survives an interruption.

Example:
    >>> class PrintLoss(Hook):
    ...     def on_validation_end(self, ctx, metrics):
    ...         print(metrics["train_loss"])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["EarlyStopping", "GradualUnfreezing", "Hook", "HookContext", "StopTraining", "call_hooks", "hook_states",
           "load_hook_states"]


class StopTraining(Exception):
    """Raised by a hook to end training cleanly; the message is the reason, kept in summary.json."""


class Hook:
    """No-op versions of every hook method; subclass it, or write any object with the methods you need."""

    def on_fit_start(self, ctx: HookContext) -> None: ...

    def on_epoch_start(self, ctx: HookContext) -> None: ...

    def on_train_batch_end(self, ctx: HookContext, outputs: dict) -> None: ...

    def on_validation_end(self, ctx: HookContext, metrics: dict) -> None: ...

    def on_fit_end(self, ctx: HookContext) -> None: ...


@dataclass
class HookContext:
    fabric: object
    task: object
    model: object  # the full model (what checkpoints hold)
    trained: object  # what the optimizers update, Fabric-wrapped (the model, or only its head on cached features)
    optimizers: dict  # name -> Fabric-wrapped optimizer
    schedulers: dict  # name -> scheduler or None
    state: object  # the loop's LoopState: epoch, batch, global_step, best_metric, ...
    run_dir: Path
    epochs: int


def call_hooks(hooks: list, name: str, ctx: HookContext, *args) -> str | None:
    """Call `name` on every hook that has it; return the reason of the first `StopTraining`, if any.

    Every hook sees the event even after one asks to stop, so a logger still records the epoch that ended it.
    """
    reason = None
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is None:
            continue
        try:
            method(ctx, *args)
        except StopTraining as stop:
            reason = reason or str(stop) or f"{type(hook).__name__} stopped training"
    return reason


def _keys(hooks: list) -> list[tuple[str, object]]:
    # Class names, numbered when repeated: stable across a resume that passes the same hooks in the same order.
    seen: dict[str, int] = {}
    keyed = []
    for hook in hooks:
        name = type(hook).__name__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((name if seen[name] == 1 else f"{name}#{seen[name]}", hook))
    return keyed


def hook_states(hooks: list) -> dict:
    return {key: hook.state_dict() for key, hook in _keys(hooks) if hasattr(hook, "state_dict")}


def load_hook_states(hooks: list, states: dict) -> None:
    for key, hook in _keys(hooks):
        if key in states and hasattr(hook, "load_state_dict"):
            hook.load_state_dict(states[key])


def improved(value: float, best: float, mode: str) -> bool:
    """Whether `value` beats `best` for `mode` ("max" or "min"); NaN never improves."""
    return value > best if mode == "max" else value < best


def worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


class EarlyStopping(Hook):
    """Stop after `patience` validations in a row without improvement of `monitor` (default: the task's).

    Example:
        >>> stopper = EarlyStopping(patience=2, monitor="val_loss", mode="min")
    """

    def __init__(self, patience: int, monitor: str | None = None, mode: str | None = None):
        self.patience, self.monitor, self.mode = patience, monitor, mode
        self.best: float | None = None
        self.bad_epochs = 0

    def on_validation_end(self, ctx: HookContext, metrics: dict) -> None:
        monitor = self.monitor or getattr(ctx.task, "monitor", "val_acc")
        mode = self.mode or getattr(ctx.task, "monitor_mode", "max")
        best = worst(mode) if self.best is None else self.best
        if improved(metrics[monitor], best, mode):
            self.best, self.bad_epochs = metrics[monitor], 0
        else:
            self.best, self.bad_epochs = best, self.bad_epochs + 1
        if self.bad_epochs >= self.patience:
            raise StopTraining(f"early stopping: {monitor} did not improve for {self.bad_epochs} epoch(s)")

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class GradualUnfreezing(Hook):
    """ULMFiT's gradual unfreezing (Howard & Ruder 2018): before each epoch, `unfreeze(epoch)` sets which stages
    learn and returns how many do; `say` reports it ("gradual: 2 of 5 backbone stages trainable").

    It holds no state: the stages follow from the epoch alone, so a resumed run unfreezes exactly as before.
    """

    def __init__(self, unfreeze: Callable[[int], int], stages: int, what: str = "backbone",
                 say: Callable[[str], None] = print):
        self.unfreeze, self.stages, self.what, self.say = unfreeze, stages, what, say

    def on_epoch_start(self, ctx: HookContext) -> None:
        trainable = self.unfreeze(ctx.state.epoch)
        self.say(f"gradual: {trainable} of {self.stages} {self.what} stages trainable")
