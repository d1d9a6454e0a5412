"""`fit`: train a task in a run folder — Fabric, seeding, optimizers, the loop, checkpoints and resume.

`pixelforge.train` (engine/train.py) turns a config and data into a run folder and calls `fit`; a program that
builds its own task (a GAN, a new kind of data) calls `fit` directly with a function that returns a `TaskSetup`.
The function runs inside each training process (DDP spawns them), so it must be picklable: a module-level
function or a `functools.partial` of one, not a lambda.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader

from pixelforge.engine import process_state
from pixelforge.runs import folder as rd
from pixelforge.engine.cpu_memory import reuse_freed_memory
from pixelforge.engine.fabric import LOGGER_NAMES, lightning_fabric, new_fabric
from pixelforge.engine.hooks import EarlyStopping
from pixelforge.engine.loop import EpochSampler, Loop, LoopState
from pixelforge.engine.main_guard import check_main_guard
from pixelforge.engine.progress import EpochProgress
from pixelforge.engine.quiet import SpawnedOutput
from pixelforge.engine.samplers import ItemSeeds, SeededItems
from pixelforge.engine.schedule import build_optimizer, build_scheduler
from pixelforge.engine.setup import TaskSetup
from pixelforge.engine.threads import torch_threads
from pixelforge.errors import (UNWRITABLE, Interrupted, PixelforgeError, is_out_of_memory, is_worker_failure,
                               memory_that_ran_out, os_error_line, raise_interrupt, worker_failure_line)

log = logging.getLogger("pixelforge")


@dataclass  # not frozen: Fabric's DDP launcher copies its arguments field by field, which frozen forbids
class FitConfig:
    """The engine's settings (a subset of the run config, `pixelforge.config.RunConfig`, whose fields of the same names mean the same)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float | str = 1e-3  # or "auto": a learning-rate range test first (engine/lr_find.py)
    lr_find_steps: int = 100
    optimizer: str = "adamw"  # the default optimizer, when the task configures none
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    grad_clip: float | None = None
    early_stopping: int | None = None  # patience, in epochs without improvement of the task's monitor
    seed: int = 0
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    precision: str = "32"
    precision_reason: str = "as set"  # for the log: why this precision
    find_unused_parameters: bool = False  # DDP: frozen stages get no gradient
    quiet: bool = False
    # For messages only: what is trained, how, and at what size ("training simple_cnn (classify, full, ...)").
    name: str = "model"
    tags: tuple = ()
    img_size: int | None = None


@dataclass
class FitResult:
    best_metric: float
    best_epoch: int
    epochs_run: int  # epochs with a metrics.csv row
    stopped_early: bool
    stop_reason: str
    monitor: str
    monitor_mode: str
    lr: float
    path: str
    n_train: int
    n_val: int
    unreadable: list = field(default_factory=list)
    global_rank: int = 0
    feature_extraction_seconds: float | None = None  # the steps trained a head on features computed first


def fit(build_setup: Callable[..., TaskSetup], run_dir: str | Path, config: FitConfig | None = None, *,
        resume: bool = False, hooks: list | tuple = (), checkpoint_meta: dict | None = None) -> FitResult:
    """Train `build_setup(fabric, progress)`'s task in `run_dir`: metrics.csv, tensorboard/, checkpoints/.

    Resumes from `run_dir/checkpoints/last.ckpt` when `resume` is true. Ctrl-C or SIGTERM saves the position and
    raises `Interrupted`, a `PixelforgeError` ("interrupted ... resume with ..."); a hook's `StopTraining` returns
    normally with `stopped_early=True`. Under DDP (devices > 1) the result is rank 0's.

    Afterwards, however it ends, the process is as before: SIGINT/SIGTERM handlers, flush-denormal, torch's
    thread count, default dtype and grad mode, the RNG states and environment variables are put back
    (engine/process_state.py). Deliberately kept: glibc's malloc thresholds (engine/cpu_memory.py), which cannot
    be undone cheaply and only keep freed memory for reuse; and the CUDA RNG, seeded when CUDA is used.

    Example:
        >>> from functools import partial
        >>> result = fit(partial(build_my_setup, data), "runs/mine", FitConfig(epochs=3))  # doctest: +SKIP
        >>> result.best_epoch  # doctest: +SKIP
        3
    """
    run_dir, config = Path(run_dir), config or FitConfig()
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    with process_state.restored_afterwards(), _lightning_info(shown=not config.quiet):
        # Lightning's "Using bfloat16 Automatic Mixed Precision (AMP)" says less than our "training ..." line,
        # which names the precision and why: never shown.
        with _lightning_info(shown=False):
            fabric = new_fabric(config.accelerator, config.devices, num_nodes=config.num_nodes,
                                precision=_fabric_precision(config.precision), strategy=_strategy(config),
                                loggers=_tensorboard(run_dir))
        try:
            return fabric.launch(_fit_process, build_setup, run_dir, config, resume, list(hooks),
                                 dict(checkpoint_meta or {}), SpawnedOutput(config.quiet))
        except Exception as exc:
            if type(exc).__name__ != "ProcessRaisedException":  # torch.multiprocessing's, from a spawned process
                raise
            recorded = _recorded_process_error(run_dir)
            if recorded is None:
                raise
            raise recorded from None


def _fit_process(fabric, build_setup, run: Path, config: FitConfig, resuming: bool, hooks: list, meta: dict,
                 output: SpawnedOutput) -> FitResult:
    """One training process: everything after Fabric is up (a spawned DDP process was silenced, when quiet, as
    `output` was unpickled in it)."""
    with _lightning_info(shown=not config.quiet):
        try:
            try:
                return _train_process(fabric, build_setup, run, config, resuming, hooks, meta)
            except Exception as exc:
                line = _out_of_resources_line(exc, run, config, fabric)
                if line is None:
                    raise
                raise PixelforgeError(line) from None
        except PixelforgeError as exc:
            if fabric.world_size > 1:
                _record_process_error(run, fabric.global_rank, exc)
            raise
        finally:
            _leave_process_group(fabric)


# A spawned DDP process's exception reaches `fit` only as torch's ProcessRaisedException, which carries the
# process's traceback as text: a user's one-line mistake (or an interruption's "resume with ...") became a
# traceback. Each process writes its PixelforgeError here before raising, and `fit` raises it again as itself.
PROCESS_ERROR = ".process-error-{rank}.json"


def _record_process_error(run: Path, rank: int, exc: PixelforgeError) -> None:
    import json

    signum = exc.signum if isinstance(exc, Interrupted) else None
    (run / PROCESS_ERROR.format(rank=rank)).write_text(json.dumps({"message": str(exc), "signum": signum}))


def _recorded_process_error(run: Path) -> PixelforgeError | None:
    """The error the lowest rank recorded (rank 0 names what is saved and how to resume), the files removed."""
    import json

    files = sorted(run.glob(PROCESS_ERROR.format(rank="*")), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    recorded = [json.loads(f.read_text()) for f in files]
    for f in files:
        f.unlink(missing_ok=True)
    if not recorded:
        return None
    first = recorded[0]
    if first["signum"] is not None:
        return Interrupted(first["message"], first["signum"])
    return PixelforgeError(first["message"])


def _leave_process_group(fabric) -> None:
    """Shut a DDP run's process group down while the interpreter is whole. Left to interpreter exit, gloo's worker
    threads were torn down with it and a process could abort with "terminate called without an active exception"
    (pytorch/pytorch#190489; seen once in CI's two-process test). Every collective of a run happens inside `fit`;
    a later `fit` in the same process (tune's trials) starts a new group."""
    if fabric.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _train_process(fabric, build_setup, run: Path, config: FitConfig, resuming: bool, hooks: list, meta: dict) -> FitResult:
    if fabric.global_rank == 0 and not resuming:
        log.info("run folder: %s", run)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_interrupt)  # SIGTERM saves a checkpoint like Ctrl-C
    fabric.seed_everything(config.seed, verbose=False)
    # Denormal floats (|x| < 1e-38) appear in early fine-tuning steps and run ~40x slower on x86 CPUs: measured
    # 5 vs 190 img/s for the quickstart's first epochs. Flushing them to zero changes no result we could measure.
    torch.set_flush_denormal(True)
    progress = EpochProgress(quiet=config.quiet or fabric.global_rank != 0)
    progress.detail(reuse_freed_memory())  # activations are re-allocated every step: no page faults (cpu_memory.py)
    setup = build_setup(fabric, progress)
    train_loader, val_loader, sampler = _loaders(setup, config, fabric)
    lr = _learning_rate(setup, config, fabric, train_loader, run, progress)
    configured = _configure_optimizers(setup, config, lr, len(train_loader))
    trained, optimizers = _setup_trained(fabric, setup, configured)
    schedulers = {name: scheduler for name, (_, scheduler) in configured.items()}
    hooks = [*setup.hooks, *([EarlyStopping(config.early_stopping)] if config.early_stopping else []), *hooks]
    loop = Loop(fabric, setup.task, trained, optimizers, schedulers, train_loader, val_loader, sampler, run,
                setup.model, config.epochs, config.grad_clip, hooks, progress,
                {**meta, **setup.extra_checkpoint}, setup.channels_last, setup.speed_column)
    state = LoopState()
    if resuming and fabric.global_rank == 0:
        rd.discard_partial_writes(run / "checkpoints")
    if resuming and (run / "checkpoints" / "last.ckpt").exists():
        state = loop.restore(rd.load_checkpoint(run / "checkpoints" / "last.ckpt"))
        done = state.epoch >= config.epochs or state.stopped_early
        progress.info(f"resuming {run}: " + (f"its {state.epoch} epochs are trained" if done else
                                              f"at epoch {state.epoch + 1}, batch {state.batch}"))
    elif resuming:  # stopped before its first checkpoint
        progress.info(f"resuming {run}: no checkpoint yet, training from the first epoch")
    progress.info(f"training {config.name} ({', '.join((*config.tags, setup.path))}) on {setup.n_train} "
                  f"{setup.train_unit}, validating on {setup.n_val}; {fabric.world_size} process(es), "
                  f"precision {config.precision} ({config.precision_reason})")
    state = _run(loop, state, setup, config)
    for logger in fabric.loggers:
        logger.finalize("success")
    fabric.barrier()
    return FitResult(state.best_metric, state.best_epoch, len(rd.read_metrics(run / "metrics.csv")),
                     state.stopped_early, state.stop_reason, loop.monitor, loop.mode, lr, setup.path, setup.n_train,
                     setup.n_val, list(setup.unreadable), fabric.global_rank, setup.feature_extraction_seconds)


def _setup_trained(fabric, setup: TaskSetup, configured: dict) -> tuple:
    """(the Fabric-wrapped trained module, {name: Fabric-wrapped optimizer}). Players trained by their own optimizers
    (`setup.trained` a dict, a GAN's generator and discriminator) are set up one by one, each with the optimizer of
    its name, as Lightning's Fabric GAN example does: under DDP each gets its own wrapper, so each backward reaches
    every parameter of the module whose optimizer steps (one wrapper over both players saw half of them unused)."""
    optimizers = [opt for opt, _ in configured.values()]
    if not isinstance(setup.trained, dict):
        trained, *wrapped = fabric.setup(setup.trained, *optimizers, move_to_device=False)
        return trained, dict(zip(configured, wrapped))
    if set(setup.trained) != set(configured):
        raise PixelforgeError(f"{type(setup.task).__name__}: the trained modules {sorted(setup.trained)} and the "
                              f"optimizers {sorted(configured)} must have the same names, one optimizer a module")
    parts, wrapped = {}, {}
    for name, module in setup.trained.items():
        parts[name], wrapped[name] = fabric.setup(module, configured[name][0], move_to_device=False)
    return torch.nn.ModuleDict(parts), {name: wrapped[name] for name in configured}


def _run(loop: Loop, state: LoopState, setup: TaskSetup, config: FitConfig) -> LoopState:
    # A linear head on cached features is too small to split across threads (measured 5-10x faster on one).
    with torch_threads(1 if setup.path == "cached-features" else torch.get_num_threads()):
        return loop.run(state)


def _out_of_resources_line(exc: Exception, run: Path, config: FitConfig, fabric) -> str | None:
    """One line for running out of memory (in a step, in validation, while the data is cached) or losing a
    DataLoader worker: what ran out, the settings in use, the options that lower them, and how to go on (the loop
    has saved what the steps trained). None for any other exception."""
    saved = (run / "checkpoints" / "last.ckpt").exists()
    if isinstance(exc, OSError) and os_error_line(exc) is not None and saved:  # the checkpoint before is whole
        fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable"
        return f"{Path(exc.filename).parent}: {UNWRITABLE[exc.errno]}; {fix} and resume with `pixelforge train --resume {run}`"
    if is_worker_failure(exc):
        line = worker_failure_line(exc)
        return line + (f"; what was trained is saved: resume with `pixelforge train --resume {run} --workers 0`"
                       if saved else "")
    if not is_out_of_memory(exc):
        return None
    smaller = max(1, config.batch_size // 2)
    lower = [f"--batch-size (e.g. --batch-size {smaller})" if config.batch_size > 1 else "",
             "--img-size" if config.img_size else ""]
    advice = " or ".join(option for option in lower if option)
    advice = f"lower {advice}" if advice else ""
    if config.precision in ("32", "32-true"):  # mixed precision halves the activations
        advice += (", or " if advice else "") + "use --precision bf16-mixed"
    size = f", {config.img_size} px" if config.img_size else ""
    device = f" on {fabric.device.type}" if fabric.device.type != "cpu" else ""
    then = (f"; what was trained is saved: resume with `pixelforge train --resume {run} --batch-size {smaller}`"
            if saved else "")
    return (f"out of {memory_that_ran_out(exc)} training {config.name}{device} at batch size {config.batch_size}"
            f"{size}, precision {config.precision}: {advice or 'free memory other programs hold'}{then}")


def _loaders(setup: TaskSetup, config: FitConfig, fabric) -> tuple[DataLoader, DataLoader, EpochSampler]:
    sampler = setup.train_sampler or EpochSampler(len(setup.train_data), config.seed, fabric.global_rank,
                                                  fabric.world_size)
    # A last batch of one image is left out (a different one each epoch): BatchNorm cannot train on one sample of a
    # 1x1 map (ssdlite's extra layers: a traceback), a GAN's pairs and a contrastive batch need two. torchvision's
    # detection reference drops every last batch; a lone one is all that fails.
    lone = config.batch_size > 1 and len(sampler) > 1 and len(sampler) % config.batch_size == 1
    train_data = setup.train_data
    if setup.workers > 0:  # an item's randomness from its place in the run, not a worker's stream (samplers.py)
        sampler, train_data = ItemSeeds(sampler), SeededItems(train_data, config.seed, fabric.global_rank)
    # Pinned host memory on CUDA: Fabric's non-blocking copy then overlaps the next batch's transfer with the step
    # (torchvision's reference scripts pin too); on the CPU pinning is only a wasted copy.
    pin = fabric.device.type == "cuda"
    train_loader = DataLoader(train_data, batch_size=config.batch_size, sampler=sampler,
                              num_workers=setup.workers, persistent_workers=setup.workers > 0, drop_last=lone,
                              collate_fn=setup.collate_fn, pin_memory=pin)
    # No padding: under DDP each validation image is scored exactly once (engine/samplers.py).
    val_sampler = EpochSampler(len(setup.val_data), config.seed, fabric.global_rank, fabric.world_size, pad=False)
    val_loader = DataLoader(setup.val_data, batch_size=setup.val_batch_size or config.batch_size,
                            sampler=val_sampler, num_workers=setup.workers, collate_fn=setup.collate_fn,
                            pin_memory=pin)
    return train_loader, val_loader, sampler


def _learning_rate(setup: TaskSetup, config: FitConfig, fabric, train_loader, run: Path, progress) -> float:
    if config.lr != "auto":
        return config.lr
    if setup.param_groups is None or not getattr(setup.task, "automatic_optimization", True):
        raise PixelforgeError("lr: 'auto' runs a range test on one optimizer over the task's parameter groups; "
                              "this task configures its own optimization: give a number")
    from pixelforge.engine.lr_find import lr_range_test

    finder = lr_range_test(setup.trained, setup.task, train_loader, fabric,
                           lambda: build_optimizer(config.optimizer, setup.param_groups(1.0), 1.0), run,
                           steps=config.lr_find_steps)
    lr = fabric.broadcast(finder.suggestion, src=0)  # every DDP rank must train at the same rate
    progress.info(f"--lr auto: learning-rate range test suggests {lr:.2e} (plot: {run / 'lr_find.png'})")
    return lr


def _configure_optimizers(setup: TaskSetup, config: FitConfig, lr: float, steps_per_epoch: int) -> dict:
    """{name: (optimizer, scheduler or None)}: the task's own, the setup's, or one over `param_groups`."""
    total, warmup = steps_per_epoch * config.epochs, int(config.warmup_epochs * steps_per_epoch)
    configure = getattr(setup.task, "configure_optimizers", None) or setup.configure_optimizers
    if configure is not None:
        configured = dict(configure(lr, total, warmup))
        if not configured:
            raise PixelforgeError(f"{type(setup.task).__name__}.configure_optimizers returned no optimizer")
        return configured
    if setup.param_groups is None:
        raise PixelforgeError(f"{type(setup.task).__name__}: the setup has neither param_groups nor "
                              "configure_optimizers; give one")
    optimizer = build_optimizer(config.optimizer, setup.param_groups(lr), lr)
    return {"main": (optimizer, build_scheduler(config.schedule, optimizer, total, warmup))}


@contextmanager
def _lightning_info(shown: bool):
    """Lightning's info lines (precision, DDP start-up) shown or kept at WARNING for the block; levels put back."""
    if shown:
        yield
        return
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _fabric_precision(precision: str) -> str:
    return "32-true" if precision == "32" else precision


def _strategy(config: FitConfig):
    if config.devices * config.num_nodes == 1:
        return "auto"
    DDPStrategy = lightning_fabric().strategies.DDPStrategy  # noqa: N806 - the class
    if "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun already started one process per device
        return DDPStrategy(find_unused_parameters=config.find_unused_parameters)
    # Spawned processes work from the CLI and from Python alike (from a script, under its `__main__` guard).
    check_main_guard()
    from pixelforge.engine.spawn import SpawnDDPStrategy  # each spawned process imports Fabric without torchmetrics

    return SpawnDDPStrategy(find_unused_parameters=config.find_unused_parameters)


def _tensorboard(run: Path):
    try:
        return lightning_fabric().loggers.TensorBoardLogger(root_dir=str(run), name="tensorboard", version="")
    except (ImportError, ModuleNotFoundError):
        return None
