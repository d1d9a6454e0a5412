"""The training loop: short, plain PyTorch on Lightning Fabric (devices, precision and DDP are Fabric's job).

A task (see `engine/setup.py`) supplies `training_step(model, batch)` returning a dict with `loss` (a tensor),
`count` (images) and optional sums such as `correct`, `validate(model, batches, fabric)` returning its validation
metrics, and `monitor`, the metric that picks best.ckpt; the loop owns epochs, the optimizer and scheduler steps,
checkpoints, early stopping and interruption. Duck-typed callbacks may define `on_train_batch_end(state)` and
`on_epoch_end(state, row)` (detectron2's hook lifecycle, without a base class).

Interruption (Ctrl-C, SIGTERM) mid-epoch writes `last.ckpt` with the position inside the epoch; the epoch's batch
order comes from a generator seeded by (seed, epoch), so a resumed run replays the remaining batches exactly.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError


@dataclass
class LoopState:
    epoch: int = 0  # the epoch in progress (or next to start)
    batch: int = 0  # batches of `epoch` already done
    global_step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    train_sums: dict = field(default_factory=lambda: {"loss": 0.0, "count": 0.0})  # + task sums, e.g. "correct"
    stopped_early: bool = False


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across ranks, that can start part-way through (for resume)."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.seed, self.rank, self.world = size, seed, rank, world
        self.epoch, self.skip = 0, 0

    def set_position(self, epoch: int, skip: int) -> None:
        self.epoch, self.skip = epoch, skip

    def _indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        per_rank = math.ceil(self.size / self.world)
        order += order[: per_rank * self.world - self.size]  # pad so every rank runs the same number of steps
        return order[self.rank :: self.world][self.skip :]

    def __iter__(self):
        return iter(self._indices())

    def __len__(self) -> int:
        return len(self._indices())


def rng_state() -> dict:
    import random

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    import random

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


@dataclass
class Loop:
    fabric: object
    task: object
    model: torch.nn.Module  # what is trained (the whole classifier, or just its head on cached features)
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: EpochSampler
    run_dir: Path
    save_module: torch.nn.Module  # what checkpoints hold (always the full model)
    epochs: int
    grad_clip: float | None = None
    early_stopping: int | None = None
    callbacks: list = field(default_factory=list)
    on_epoch_start: object = None  # e.g. gradual unfreezing: f(epoch)
    progress: object = None
    extra_checkpoint: dict = field(default_factory=dict)
    channels_last: bool = False

    def checkpoint(self, state: LoopState) -> dict:
        return {
            "model": self.save_module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loop": asdict(state),
            "rng": rng_state(),
            **self.extra_checkpoint,
        }

    def _save(self, state: LoopState, name: str) -> None:
        if self.fabric.global_rank == 0:
            rd.save_checkpoint(self.checkpoint(state), self.run_dir / "checkpoints" / name)

    def _batch_to_device(self, batch):
        x, y = self.fabric.to_device(batch)
        if self.channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def run(self, state: LoopState) -> LoopState:
        # Ctrl-C / SIGTERM only set a flag; the loop stops at the next batch boundary, never inside a checkpoint
        # write, so the saved state always matches the files next to it.
        self._stop_requested = False
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._request_stop)
        try:
            while state.epoch < self.epochs and not state.stopped_early:
                self._train_epoch(state)
                self._end_epoch(state)
                if self._stop_requested and state.epoch < self.epochs:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self._save(state, "last.ckpt")
            raise PixelforgeError(
                f"interrupted at epoch {state.epoch + 1}, batch {state.batch}; checkpoint saved: "
                f"resume with `pixelforge train --resume {self.run_dir}`"
            ) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return state

    def _request_stop(self, signum, frame) -> None:
        self._stop_requested = True

    def _train_epoch(self, state: LoopState) -> None:
        if self.on_epoch_start is not None:
            self.on_epoch_start(state.epoch)
        self.sampler.set_position(state.epoch, state.batch * self.train_loader.batch_size)
        self.model.train()
        if hasattr(self.task, "freeze_frozen_norms"):
            self.task.freeze_frozen_norms(self.model)
        started, images = time.perf_counter(), 0
        task_id = self.progress.start_epoch(state.epoch, self.epochs, len(self.train_loader)) if self.progress else None
        for batch in self.train_loader:
            batch = self._batch_to_device(batch)
            out = self.task.training_step(self.model, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.fabric.backward(out["loss"])
            if self.grad_clip:
                self.fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            state.batch += 1
            state.global_step += 1
            images += int(out["count"])
            for key, value in out.items():
                if key == "loss":
                    state.train_sums["loss"] += float(value.detach()) * float(out["count"])
                elif isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1):
                    state.train_sums[key] = state.train_sums.get(key, 0.0) + float(value)
            for callback in self.callbacks:
                getattr(callback, "on_train_batch_end", lambda s: None)(state)
            if self._stop_requested:
                raise KeyboardInterrupt
            if self.progress:
                sums = state.train_sums
                extra = {"acc": sums["correct"] / max(sums["count"], 1)} if "correct" in sums else {}
                self.progress.advance(task_id, loss=sums["loss"] / max(sums["count"], 1), **extra,
                                      ips=images / (time.perf_counter() - started))
        self._epoch_seconds = time.perf_counter() - started
        self._epoch_images = images

    @torch.no_grad()
    def validate(self) -> dict:
        self.model.eval()
        return self.task.validate(self.model, (self._batch_to_device(batch) for batch in self.val_loader), self.fabric)

    def _end_epoch(self, state: LoopState) -> None:
        keys = sorted(state.train_sums)
        sums = torch.tensor([state.train_sums[k] for k in keys], dtype=torch.float64)
        sums = dict(zip(keys, self.fabric.all_reduce(sums.to(self.fabric.device), reduce_op="sum").cpu().tolist()))
        count = max(sums["count"], 1)
        row = {
            "epoch": state.epoch + 1,
            "train_loss": round(sums["loss"] / count, 6),
            **({"train_acc": round(sums["correct"] / count, 6)} if "correct" in sums else {}),
            **{k: round(v, 6) for k, v in self.validate().items()},
            "lr": self.optimizer.param_groups[-1]["lr"],
            "images_per_s": round(self._epoch_images * self.fabric.world_size / max(self._epoch_seconds, 1e-9), 2),
            "epoch_seconds": round(self._epoch_seconds, 3),
        }
        monitor = getattr(self.task, "monitor", "val_acc")
        improved = row[monitor] > state.best_metric
        if improved:
            state.best_metric, state.best_epoch, state.bad_epochs = row[monitor], state.epoch + 1, 0
        else:
            state.bad_epochs += 1
        state.epoch, state.batch = state.epoch + 1, 0
        state.train_sums = {"loss": 0.0, "count": 0.0}
        if self.early_stopping and state.bad_epochs >= self.early_stopping:
            state.stopped_early = True
        if improved:
            self._save(state, "best.ckpt")
        self._save(state, "last.ckpt")
        if self.fabric.global_rank == 0:  # written after the checkpoints: a row means the epoch is safely saved
            rd.append_metrics(self.run_dir / "metrics.csv", row)
        self.fabric.log_dict({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        if self.progress:
            self.progress.end_epoch(row)
        for callback in self.callbacks:
            getattr(callback, "on_epoch_end", lambda s, r: None)(state, row)
