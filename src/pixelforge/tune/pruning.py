"""Pruning as an engine hook: report the monitor after each validation, stop through `StopTraining` when pruned.

The hook carries the storage URL, study name and trial id rather than the `optuna.trial.Trial`, so it can be
pickled into DDP's spawned processes. Under DDP only rank 0 opens the study and asks the pruner; the decision is
broadcast, so every rank stops at the same epoch (a rank that stopped alone would leave the others waiting in an
all-reduce forever: the failure Optuna's Lightning integration is known for).
"""

from __future__ import annotations

from pixelforge.engine.hooks import Hook, StopTraining
from pixelforge.errors import PixelforgeError

PRUNED = "pruned by optuna"  # the start of the stop reason in summary.json; study.py reads it back


class OptunaPruning(Hook):
    def __init__(self, storage_url: str, study_name: str, trial_id: int, pruner, metric: str):
        self.storage_url, self.study_name, self.trial_id = storage_url, study_name, trial_id
        self.pruner, self.metric = pruner, metric
        self._trial = None  # opened lazily in the process that trains

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_trial": None}

    def on_validation_end(self, ctx, metrics: dict) -> None:
        epoch = int(metrics["epoch"])
        if self.metric not in metrics:
            raise PixelforgeError(f"--metric {self.metric}: not in this task's metrics.csv (it has "
                                  f"{', '.join(k for k in metrics if k != 'epoch')})")
        prune = False
        if ctx.fabric.global_rank == 0:
            if self._trial is None:
                from pixelforge.tune.storage import load_trial

                self._trial = load_trial(self.storage_url, self.study_name, self.trial_id, self.pruner)
            self._trial.report(float(metrics[self.metric]), step=epoch)
            prune = bool(self._trial.should_prune())
        if ctx.fabric.world_size > 1:
            prune = bool(ctx.fabric.broadcast(prune, src=0))
        if prune:
            raise StopTraining(f"{PRUNED} at epoch {epoch} ({self.metric} {metrics[self.metric]:.4f})")
