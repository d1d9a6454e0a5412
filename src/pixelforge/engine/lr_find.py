"""The learning-rate range test (Smith 2015; fastai's `lr_find`): raise the rate exponentially over a few
hundred steps, record the smoothed loss, and suggest the rate where it falls fastest. Weights are restored after.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]
    suggestion: float
    plot: Path | None


def lr_range_test(model, task, loader, fabric, make_optimizer, out_dir: Path | None = None,
                  start: float = 1e-7, end: float = 1.0, steps: int = 100, smoothing: float = 0.9,
                  channels_last: bool = False) -> LRFinderResult:
    """`make_optimizer()` must return an optimizer whose base rates are multipliers (1.0 = the group's share).

    Batches go to the device as in training (the task's `transfer_batch`, or any nesting), and the backward pass
    and step go through Fabric, so mixed precision scales and unscales the loss as it will in training.
    """
    from pixelforge.engine.loop import move_batch

    saved = copy.deepcopy(model.state_dict())
    optimizer = fabric.setup_optimizers(make_optimizer())
    base = [g["lr"] for g in optimizer.param_groups]
    lrs, losses, avg, best = [], [], 0.0, math.inf
    model.train()
    step = 0
    while step < steps:
        for batch in loader:
            lr = start * (end / start) ** (step / max(1, steps - 1))
            for group, share in zip(optimizer.param_groups, base):
                group["lr"] = lr * share
            loss = task.training_step(model, move_batch(batch, task, fabric, channels_last))["loss"]
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            avg = smoothing * avg + (1 - smoothing) * float(loss.detach())
            smoothed = avg / (1 - smoothing ** (step + 1))
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            step += 1
            if step >= steps or not math.isfinite(smoothed) or smoothed > 4 * best:
                step = steps
                break
    model.load_state_dict(saved)
    suggestion = _steepest(lrs, losses)
    plot = None
    if out_dir is not None and fabric.global_rank == 0:
        from pixelforge.viz.plots import plot_lr_find

        plot = plot_lr_find(lrs, losses, suggestion, Path(out_dir) / "lr_find.png")
    return LRFinderResult(lrs, losses, suggestion, plot)


def _steepest(lrs: list[float], losses: list[float]) -> float:
    if len(losses) < 4:
        return 1e-3
    # Ignore the diverging tail: the steepest descent before the minimum of the loss.
    stop = int(np.argmin(losses)) + 1
    grads = np.gradient(np.asarray(losses[:stop]), np.log(np.asarray(lrs[:stop]))) if stop > 2 else None
    if grads is None:
        return lrs[max(0, stop - 1)] / 10
    return float(lrs[int(np.argmin(grads))])
