"""The training loop: short, plain PyTorch on Lightning Fabric (devices, precision and DDP are Fabric's job).

The task (see `engine/setup.py` for the whole protocol) supplies the step and the validation; the loop owns the
epochs, the optimizer and scheduler steps (automatic optimization) or hands them to the step (manual: GANs,
several losses), the training metrics, checkpoints, the best-checkpoint choice by the task's monitor and mode,
hooks (`engine/hooks.py`) and interruption.

Interruption (Ctrl-C, SIGTERM) mid-epoch writes `last.ckpt` with the position inside the epoch; the epoch's batch
order comes from a generator seeded by (seed, epoch), and the RNG state is put back where the interrupted epoch
had it, so a resumed run replays the remaining batches exactly (bit for bit, on the same machine). In DataLoader
workers, whose RNG streams no checkpoint holds, each item's randomness is seeded from its place in the run instead
(samplers.py: `ItemSeeds`, `SeededItems`).

Checkpoints at epoch ends are written at most every `CHECKPOINT_EVERY_S` seconds, and always after the last epoch,
on a stop and on an interruption: a head trained on cached features runs 10 epochs in under a second, and writing
the whole model twice an epoch (atomic, fsynced) was a third of that (lever L18 in docs/performance.md). An epoch's
metrics.csv row is written with (and kept in) the checkpoint that covers it, so a row still means "saved", and a crash loses at
most `CHECKPOINT_EVERY_S` seconds of training, which a resume replays. Five seconds, not more: whoever watches
metrics.csv (or a test waiting for the first row) sees epochs at most that late.
"""

from __future__ import annotations

import copy
import math
import random
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pixelforge.runs import folder as rd
from pixelforge.engine.hooks import HookContext, call_hooks, hook_states, improved, load_hook_states, worst
from pixelforge.engine.samplers import EpochSampler
from pixelforge.engine.step_sums import StepSums
from pixelforge.errors import Interrupted, PixelforgeError, is_out_of_memory, is_worker_failure, signal_of

CHECKPOINT_EVERY_S = 5.0  # at most this much training is lost to a crash, and metrics.csv lags (module docstring)

__all__ = ["EpochSampler", "Loop", "LoopState", "StepContext", "move_batch", "rng_state", "set_rng_state", "share_buffers"]


@dataclass
class LoopState:
    epoch: int = 0  # the epoch in progress (or next to start)
    batch: int = 0  # batches of `epoch` already done
    global_step: int = 0
    best_metric: float = -math.inf
    best_epoch: int = -1
    train_sums: dict = field(default_factory=dict)  # count-weighted sums of the epoch's step scalars (step_sums.py)
    stopped_early: bool = False
    stop_reason: str = ""
    batch_size: int = 0  # what `batch` counts in (a resume after running out of memory may lower it); 0: unknown

    @classmethod
    def from_checkpoint(cls, saved: dict) -> LoopState:
        """Read a checkpoint's "loop" entry, including older ones (a `bad_epochs` counter, `correct` sums)."""
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.train_sums = {("acc" if k == "correct" else k): v for k, v in state.train_sums.items()}
        return state


def rng_state() -> dict:
    """The global RNG states as tensors, ints and tuples only, so a checkpoint loads with `weights_only=True`
    (numpy's own state holds an ndarray, which needs numpy's pickle globals)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Put back a `rng_state()`, or the one an older checkpoint holds (numpy's keys as an ndarray)."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def move_batch(batch, task, fabric, channels_last: bool = False):
    """The batch on the device: the task's `transfer_batch(batch, fabric)` when it has one, else Fabric's move of
    any nesting of tensors. On the default path the first element of a tuple batch, when it is a 4-D image tensor,
    goes channels-last (the memory layout the model was converted to)."""
    transfer = getattr(task, "transfer_batch", None)
    if transfer is not None:
        return transfer(batch, fabric)
    batch = fabric.to_device(batch)
    if channels_last and isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor) \
            and batch[0].ndim == 4:
        batch = (batch[0].contiguous(memory_format=torch.channels_last), *batch[1:])
    return batch


@dataclass
class StepContext:
    """What a manual-optimization step (`task.automatic_optimization = False`) gets as its third argument.

    The step zeroes, back-propagates, clips and steps the optimizers (and schedulers) itself, in its own order:
        ctx.optimizers["discriminator"].zero_grad(); ctx.backward(loss_d); ctx.optimizers["discriminator"].step()
    """

    fabric: object
    model: torch.nn.Module  # the Fabric-wrapped trained module
    optimizers: dict  # name -> Fabric-wrapped optimizer
    schedulers: dict  # name -> scheduler or None
    state: LoopState

    @property
    def global_step(self) -> int:
        return self.state.global_step

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def backward(self, loss: torch.Tensor) -> None:
        self.fabric.backward(loss)  # precision (loss scaling) and DDP gradient sync are Fabric's

    def clip(self, target: str | torch.nn.Module, max_norm: float) -> None:
        """Clip the gradient norm of one optimizer's parameters (by name), or of every optimizer holding a
        parameter of `target` (a module). Through Fabric, which unscales mixed-precision gradients first."""
        if isinstance(target, str):
            chosen = [self.optimizers[target]]
        else:
            ids = {id(p) for p in target.parameters()}
            chosen = [opt for opt in self.optimizers.values()
                      if any(id(p) in ids for group in opt.param_groups for p in group["params"])]
        for optimizer in chosen:
            self.fabric.clip_gradients(self.model, optimizer, max_norm=max_norm)


@dataclass
class Loop:
    fabric: object
    task: object
    model: torch.nn.Module  # what is trained, Fabric-wrapped (the whole model, or just its head on cached features)
    optimizers: dict  # name -> Fabric-wrapped optimizer (a bare optimizer is named "main")
    schedulers: dict  # name -> scheduler or None (likewise)
    train_loader: DataLoader
    val_loader: DataLoader
    sampler: EpochSampler
    run_dir: Path
    save_module: torch.nn.Module  # what checkpoints hold (always the full model)
    epochs: int
    grad_clip: float | None = None
    hooks: list = field(default_factory=list)
    progress: object = None
    extra_checkpoint: dict = field(default_factory=dict)
    channels_last: bool = False
    speed_column: str = "images_per_s"  # "head_images_per_s" when the steps run a head on precomputed features

    def __post_init__(self):
        if not isinstance(self.optimizers, dict):
            self.optimizers = {"main": self.optimizers}
        if not isinstance(self.schedulers, dict):
            self.schedulers = {"main": self.schedulers}
        self.monitor = getattr(self.task, "monitor", "val_acc")
        self.mode = getattr(self.task, "monitor_mode", "max")
        if self.mode not in ("max", "min"):
            raise PixelforgeError(f"monitor_mode: {self.mode!r} is not 'max' or 'min' (task {type(self.task).__name__})")
        self.automatic = getattr(self.task, "automatic_optimization", True)
        self._pending_rng: dict | None = None
        self._stop_signal: int | None = None  # the signal that asked to stop, for the exit code
        self._sums: StepSums | None = None  # the epoch in progress's training metrics
        # Written at the next save (`_save_last`): the best epoch's checkpoint (a copy) and the finished epochs' rows.
        self._pending_best: dict | None = None
        self._pending_rows: list[dict] = []
        self._saved_at = time.monotonic()

    # --- checkpoints -------------------------------------------------------------------------------------------
    def checkpoint(self, state: LoopState) -> dict:
        optimizers = {name: opt.state_dict() for name, opt in self.optimizers.items()}
        schedulers = {name: s.state_dict() if s is not None else None for name, s in self.schedulers.items()}
        if list(optimizers) == ["main"]:  # one optimizer: the layout every earlier run has
            states = {"optimizer": optimizers["main"], "scheduler": schedulers["main"]}
        else:
            states = {"optimizers": optimizers, "schedulers": schedulers}
        loop = {**asdict(state), "train_sums": self._sums.totals() if self._sums is not None else state.train_sums}
        saved = {"model": self.save_module.state_dict(), **states, "loop": loop, "rng": rng_state(),
                 **self.extra_checkpoint}
        if hasattr(self.task, "state_dict"):
            saved["task_state"] = self.task.state_dict()
        if hook_states(self.hooks):
            saved["hooks"] = hook_states(self.hooks)
        return saved

    def restore(self, saved: dict) -> LoopState:
        """Load a checkpoint written by `checkpoint`; return the loop state to continue from."""
        self.save_module.load_state_dict(saved["model"])
        optimizers = saved.get("optimizers") or {"main": saved["optimizer"]}
        schedulers = saved.get("schedulers") or {"main": saved.get("scheduler")}
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(optimizers[name])
        for name, scheduler in self.schedulers.items():
            if scheduler is not None and schedulers.get(name) is not None:
                scheduler.load_state_dict(schedulers[name])
        if "task_state" in saved and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(saved["task_state"])
        load_hook_states(self.hooks, saved.get("hooks", {}))
        self._pending_rng = saved["rng"]  # applied when the epoch's batches start (`_begin_epoch`)
        if self.fabric.global_rank == 0:
            self._write_missing_rows(saved.get("metrics_rows", []))
        return LoopState.from_checkpoint(saved["loop"])

    def _write_missing_rows(self, rows: list[dict]) -> None:
        """The rows last.ckpt covers that metrics.csv lacks: the process died between writing the two."""
        path = self.run_dir / "metrics.csv"
        written = {int(row["epoch"]) for row in rd.read_metrics(path) if row.get("epoch") is not None}
        for row in rows:
            if int(row["epoch"]) not in written:
                rd.append_metrics(path, row)

    def _save_last(self, state: LoopState) -> None:
        """Write what is pending, in an order that keeps the folder consistent at every moment a crash could come:
        best.ckpt, then last.ckpt (which names the best epoch), then the rows of the epochs they cover."""
        if self.fabric.global_rank == 0:
            folder = self.run_dir / "checkpoints"
            if self._pending_best is not None:
                rd.save_checkpoint(self._pending_best, folder / "best.ckpt")
            last = self.checkpoint(state)
            # The rows go in last.ckpt too: a kill -9 after it was written and before the rows were would lose
            # them, and a resume would not train those epochs again (`restore` writes the missing ones).
            last["metrics_rows"] = [dict(row) for row in self._pending_rows]
            rd.save_checkpoint(last, folder / "last.ckpt")
            for row in self._pending_rows:
                rd.append_metrics(self.run_dir / "metrics.csv", row)
        self._pending_best, self._pending_rows, self._saved_at = None, [], time.monotonic()

    # --- the fit -----------------------------------------------------------------------------------------------
    def run(self, state: LoopState) -> LoopState:
        if state.best_epoch < 0:
            state.best_metric = worst(self.mode)
        self.ctx = HookContext(self.fabric, self.task, self.save_module, self.model, self.optimizers,
                               self.schedulers, state, self.run_dir, self.epochs)
        self._step_ctx = StepContext(self.fabric, self.model, self.optimizers, self.schedulers, state)
        self._in_batches_of(state, self.train_loader.batch_size)
        started_at = state.global_step
        with self._stop_on_signals():
            try:
                stopped_before = state.stopped_early  # a resumed run that had already stopped does nothing
                self._hook(state, "on_fit_start")
                if state.stopped_early and not stopped_before:
                    self._save_last(state)
                while state.epoch < self.epochs and not state.stopped_early:
                    self._train_epoch(state)
                    if state.stopped_early:  # a hook asked mid-epoch: keep the position, as an interruption does
                        self._save_last(state)
                        break
                    self._end_epoch(state)
                    if self._stop_signal is not None and state.epoch < self.epochs:
                        raise KeyboardInterrupt(self._stop_signal)
            except (KeyboardInterrupt, BrokenPipeError) as interrupt:  # a closed pipe stops as SIGPIPE would
                self._save_last(state)
                raise Interrupted(
                    f"interrupted at epoch {state.epoch + 1}, batch {state.batch}; checkpoint saved: "
                    f"resume with `pixelforge train --resume {self.run_dir}`", signal_of(interrupt)
                ) from None
            except Exception as exc:
                # Out of memory (or a DataLoader worker lost) mid-run: keep what the steps trained, at the batch it
                # stopped before, as an interruption does; the caller says what to lower and how to resume.
                if (is_out_of_memory(exc) or is_worker_failure(exc)) and (state.global_step > started_at
                                                                           or self._pending_rows):
                    self._save_last(state)
                raise
        self._hook(state, "on_fit_end")
        return state

    def _in_batches_of(self, state: LoopState, size: int | None) -> None:
        """Count `state.batch` in batches of `size`: a run resumed with another --batch-size (after running out of
        memory) starts where the samples done end, replaying at most one batch of them."""
        if size and state.batch_size and state.batch_size != size and state.batch:
            done = state.batch * state.batch_size
            state.batch = len(self.train_loader) if done >= len(self.sampler) else done // size
        if size:
            state.batch_size = size

    @contextmanager
    def _stop_on_signals(self):
        # Ctrl-C / SIGTERM only set a flag; the loop stops at the next batch boundary, never inside a checkpoint
        # write, so the saved state always matches the files next to it.
        self._stop_signal = None
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _request_stop(self, signum, frame) -> None:
        self._stop_signal = int(signum)

    def _hook(self, state: LoopState, name: str, *args) -> None:
        reason = call_hooks(self.hooks, name, self.ctx, *args)
        if reason is not None and not state.stopped_early:
            state.stopped_early, state.stop_reason = True, reason

    def _begin_epoch(self, state: LoopState):
        """Position the sampler and return the epoch's batch iterator, with the RNG where an uninterrupted run has
        it: a DataLoader draws its seed from the global RNG when iterated, so a mid-epoch checkpoint's RNG state
        (taken after that draw) goes back after it, an epoch-boundary one (taken before) before it."""
        self.sampler.set_position(state.epoch, state.batch * self.train_loader.batch_size)
        if self._pending_rng is not None and state.batch == 0:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        batches = iter(self.train_loader)
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        return batches

    def _train_epoch(self, state: LoopState) -> None:
        self._hook(state, "on_epoch_start")
        if state.stopped_early:
            return
        self.model.train()
        if hasattr(self.task, "freeze_frozen_norms"):
            self.task.freeze_frozen_norms(self.model)
        initial = state.train_sums or ({"loss": 0.0} if self.automatic else {})
        self._sums = StepSums(self.fabric.device, initial)
        started, images, shown = time.perf_counter(), 0, 0.0
        self._shown: dict = {}
        task_id = (self.progress.start_epoch(state.epoch, self.epochs, len(self.train_loader), _speed_unit(self.speed_column))
                   if self.progress else None)
        for batch in self._begin_epoch(state):
            out = self._step(move_batch(batch, self.task, self.fabric, self.channels_last), state)
            state.batch += 1
            state.global_step += 1
            self._sums.add(out)
            images = images + out.get("count", 1)
            self._hook(state, "on_train_batch_end", out)
            if self._stop_signal is not None:
                raise KeyboardInterrupt(self._stop_signal)
            if self.progress:
                shown = self._show_progress(task_id, images, started, shown, state.batch == len(self.train_loader))
            if state.stopped_early:
                break
        self._epoch_seconds = time.perf_counter() - started
        self._epoch_images = float(images)

    def _step(self, batch, state: LoopState) -> dict:
        if not self.automatic:
            return self.task.training_step(self.model, batch, self._step_ctx)
        out = self.task.training_step(self.model, batch)
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(out["loss"])
        for optimizer in self.optimizers.values():
            if self.grad_clip:
                self.fabric.clip_gradients(self.model, optimizer, max_norm=self.grad_clip)
            optimizer.step()
        for scheduler in self.schedulers.values():
            if scheduler is not None:
                scheduler.step()
        return out

    def _show_progress(self, task_id, images, started: float, shown: float, last: bool) -> float:
        # Reading the running loss waits for the device; twice a second is enough for a human.
        now = time.perf_counter()
        if now - shown >= 0.5 or last:
            fields = {"loss": self._sums.value("loss"), "acc": self._sums.value("acc"),
                      "ips": float(images) / max(now - started, 1e-9)}
            self._shown, shown = {k: v for k, v in fields.items() if v is not None}, now
        self.progress.advance(task_id, **self._shown)
        return shown

    @torch.no_grad()
    def validate(self) -> dict:
        """The task's validation in fp32, on the module Fabric wrapped (outside its autocast): the number that picks
        best.ckpt is then the one `pixelforge evaluate` (fp32) reproduces on the same split, not a bf16/fp16 one."""
        self.model.eval()
        model = getattr(self.model, "module", self.model)  # Fabric's wrapper runs forward under mixed precision
        if self.fabric.world_size > 1:
            share_buffers(self.save_module)
        batches = (move_batch(batch, self.task, self.fabric, self.channels_last) for batch in self.val_loader)
        with torch.autocast(self.fabric.device.type, enabled=False):
            return self.task.validate(model, batches, self.fabric)

    def _epoch_row(self, state: LoopState) -> dict:
        totals = self._sums.totals(lambda t: self.fabric.all_reduce(t, reduce_op="sum"))
        lrs = {name: opt.param_groups[-1]["lr"] for name, opt in self.optimizers.items()}
        return {
            "epoch": state.epoch + 1,
            **{f"train_{k}": round(v, 6) for k, v in StepSums.means(totals).items()},
            # python floats: a numpy number (round() keeps its type) would need numpy's globals to load a checkpoint
            **{k: round(float(v), 6) for k, v in self.validate().items()},
            **({"lr": next(iter(lrs.values()))} if len(lrs) == 1 else {f"lr_{k}": v for k, v in lrs.items()}),
            self.speed_column: round(self._epoch_images * self.fabric.world_size / max(self._epoch_seconds, 1e-9), 2),
            "epoch_seconds": round(self._epoch_seconds, 3),
        }

    def _end_epoch(self, state: LoopState) -> None:
        row = self._epoch_row(state)
        better = improved(row[self.monitor], state.best_metric, self.mode)
        if better:
            state.best_metric, state.best_epoch = row[self.monitor], state.epoch + 1
        self._hook(state, "on_validation_end", row)  # e.g. early stopping; its decision is saved below
        state.epoch, state.batch = state.epoch + 1, 0
        state.train_sums, self._sums = {}, None
        if better and self.fabric.global_rank == 0:  # a copy: training goes on changing the tensors
            self._pending_best = copy.deepcopy(self.checkpoint(state))
        self._pending_rows.append(row)
        due = time.monotonic() - self._saved_at >= CHECKPOINT_EVERY_S
        if due or state.epoch >= self.epochs or state.stopped_early or self._stop_signal is not None:
            self._save_last(state)
        self.fabric.log_dict({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        if self.progress:
            self.progress.end_epoch(row)
        for hook in self.hooks:  # the older hook method, kept for callers outside the engine (benchmarks/)
            getattr(hook, "on_epoch_end", lambda s, r: None)(state, row)


def share_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Every process's buffers (batch-norm running statistics, a GAN's EMA copy of them) become rank `src`'s.

    Each process's last training step updated its batch norms' running statistics with its own batch; DDP
    broadcasts rank 0's at the next forward, but validation runs the unwrapped module, so every other process
    validated a slightly different model than rank 0, whose model is the one checkpointed and the one
    `pixelforge evaluate` loads. What DDP would do at the next forward anyway, done before validation."""
    for buffer in module.buffers():
        torch.distributed.broadcast(buffer.data, src=src)


def _speed_unit(column: str) -> str:
    """"img/s" for images_per_s, "head img/s" for head_images_per_s: what the number counts, on the screen too."""
    prefix = column.removesuffix("images_per_s").rstrip("_")
    return f"{prefix} img/s" if prefix else "img/s"
