"""`pixelforge.train`: from a config to a finished run folder.

Reads the data, builds the model for the strategy, picks the fastest exact path (cached features for a frozen
backbone, otherwise the end-to-end loop), runs the loop under Fabric (one process, or DDP), and finishes with an
evaluation report. Each step is a plain function below; the order is the story of a run.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pixelforge.config import RunConfig as TrainConfig, save_config
from pixelforge.tasks.config import build_config, load_config
from pixelforge.runs import folder as rd
from pixelforge.engine.balance import build_train_sampler, check_balance
from pixelforge.engine.cpu_memory import reuse_freed_memory
from pixelforge.engine.loop import EpochSampler, Loop, LoopState, set_rng_state
from pixelforge.engine.precision import resolve_precision
from pixelforge.engine.progress import EpochProgress
from pixelforge.engine.schedule import build_optimizer, build_scheduler
from pixelforge.engine.setup import TaskSetup
from pixelforge.engine.threads import torch_threads
from pixelforge.errors import PixelforgeError
from pixelforge.models.classifier import check_img_size, check_weights_option
from pixelforge.tasks.classify.task import prepare_data  # noqa: F401  (re-exported: evaluation and deploy use it)

log = logging.getLogger("pixelforge")


@dataclass
class TrainResult:
    run_dir: Path
    best_val_accuracy: float | None  # classification only
    best_epoch: int
    epochs_run: int
    seconds: float
    path: str  # "cached-features" or "end-to-end"
    lr: float
    monitor: str = "val_acc"  # the validation metric that chose best.ckpt (val_acc, val_map50, val_miou)
    best_metric: float = float("nan")


def default_workers() -> int:
    # Images are decoded once into RAM, so workers only run augmentations; on a small machine a worker process
    # competes with the model for the same cores, measured slower on 2 cores (benchmarks/).
    cores = os.cpu_count() or 1
    return 0 if cores <= 4 else min(8, cores // 2)


def task_module(task: str):
    """The module that implements `task`: prepare_data(cfg), build_setup(...), plus its evaluation helpers."""
    if task == "classify":
        from pixelforge.tasks.classify import task as module
    elif task == "detect":
        from pixelforge.tasks.detect import task as module
    elif task == "segment":
        from pixelforge.tasks.segment import task as module
    elif task == "instance":
        from pixelforge.tasks.instance import task as module
    else:
        raise PixelforgeError(f"task: unknown task {task!r}; choose classify, detect, segment or instance")
    return module


def train(data: str | None = None, *, config: str | Path | None = None, resume: str | Path | None = None,
          callbacks: list | None = None, **options) -> TrainResult:
    """Train a classifier and write a run folder. Options are `TrainConfig` fields (the CLI's options).

    Example:
        >>> result = train("digits", model="simple_cnn", weights="none", img_size=32, epochs=1,
        ...                out="runs/doc")  # doctest: +SKIP
        >>> result.best_val_accuracy > 0.5  # doctest: +SKIP
        True
    """
    if resume:
        run = rd.require_run(resume)
        cfg = load_config(run / "config.yaml")
        overrides = {k: v for k, v in options.items() if v is not None}
        if data is not None:
            overrides["data"] = data
        cfg = type(cfg)(**{**cfg.model_dump(), **overrides}) if overrides else cfg
    else:
        cfg = build_config(config, data=data, **options)
    # Validate everything a user can get wrong before a run folder exists, so a typo leaves nothing behind.
    module = task_module(cfg.task)
    if cfg.task == "classify":
        check_img_size(cfg.model, cfg.img_size)
        check_weights_option(cfg.weights)
    source, classes = module.prepare_data(cfg)
    if cfg.task == "classify":
        check_balance(cfg, source.split("train"))
    if resume:
        _check_classes(run, classes)
    elif "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:
        run = _torchrun_run_dir(Path(cfg.out or _default_out(cfg)))
    else:
        run = rd.new_run_dir(cfg.out or _default_out(cfg))
    rd.write_json(run / "classes.json", classes)
    save_config(cfg, run / "config.yaml")
    started = time.perf_counter()
    from lightning.fabric import Fabric

    # config.yaml keeps `auto` (a resume on other hardware decides again); the run itself uses what it resolves to.
    precision, why = resolve_precision(cfg.precision, task=cfg.task, strategy=cfg.strategy, accelerator=cfg.accelerator)
    cfg = cfg.model_copy(update={"precision": precision})
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, precision=_fabric_precision(cfg.precision),
                    strategy=_strategy(cfg), loggers=_tensorboard(run))
    fabric.launch(_fit, cfg, run, source, classes, bool(resume), callbacks or [], why)
    summary = rd.read_json(run / "summary.json")
    summary["seconds_total"] = round(time.perf_counter() - started, 2)
    rd.write_json(run / "summary.json", summary)
    return TrainResult(run, summary["best_val_accuracy"], summary["best_epoch"], summary["epochs_run"],
                       summary["seconds_total"], summary["path"], summary["lr"], summary["monitor"], summary["best_metric"])


def _default_out(cfg: TrainConfig) -> Path:
    name = f"{cfg.model}-{Path(cfg.data).stem}"
    return Path("runs") / (name if cfg.task == "classify" else f"{cfg.task}-{name}")


def _torchrun_run_dir(run: Path) -> Path:
    """Under torchrun every process runs `train`; they must agree on one folder, so no suffix is added."""
    if os.environ.get("RANK", "0") == "0" and run.exists() and any(run.iterdir()):
        raise PixelforgeError(f"{run}: folder exists and is not empty; under torchrun --out must name a new folder")
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    return run


def _fabric_precision(precision: str) -> str:
    return "32-true" if precision == "32" else precision


def _strategy(cfg: TrainConfig):
    if cfg.devices * cfg.num_nodes == 1:
        return "auto"
    from lightning.fabric.strategies import DDPStrategy

    if "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun already started one process per device
        return DDPStrategy(find_unused_parameters=cfg.strategy != "full")
    # Spawned processes work from the CLI and from Python alike; frozen stages get no gradient, so DDP must
    # tolerate unused parameters for the linear and gradual strategies.
    return DDPStrategy(start_method="spawn", find_unused_parameters=cfg.strategy != "full")


def _tensorboard(run: Path):
    try:
        from lightning.fabric.loggers import TensorBoardLogger

        return TensorBoardLogger(root_dir=str(run), name="tensorboard", version="")
    except (ImportError, ModuleNotFoundError):
        return None


def _fit(fabric, cfg: TrainConfig, run: Path, source, classes: list[str], resuming: bool, callbacks: list,
         precision_reason: str = "as set") -> None:
    if fabric.global_rank == 0 and not resuming:
        log.info("run folder: %s", run)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM saves a checkpoint like Ctrl-C
    fabric.seed_everything(cfg.seed, verbose=False)
    # Denormal floats (|x| < 1e-38) appear in early fine-tuning steps and run ~40x slower on x86 CPUs: measured
    # 5 vs 190 img/s for the quickstart's first epochs. Flushing them to zero changes no result we could measure.
    torch.set_flush_denormal(True)
    progress = EpochProgress(quiet=cfg.quiet or fabric.global_rank != 0)
    progress.info(reuse_freed_memory())  # activations are re-allocated every step: no page faults (cpu_memory.py)
    setup = task_module(cfg.task).build_setup(cfg, source, classes, fabric, progress)
    model = setup.model
    sampler = (build_train_sampler(cfg, setup.train_samples, len(setup.train_data), fabric.global_rank, fabric.world_size)
               if setup.train_samples is not None
               else EpochSampler(len(setup.train_data), cfg.seed, fabric.global_rank, fabric.world_size))
    train_loader = DataLoader(setup.train_data, batch_size=cfg.batch_size, sampler=sampler, num_workers=setup.workers,
                              persistent_workers=setup.workers > 0, drop_last=False, collate_fn=setup.collate_fn)
    val_sampler = EpochSampler(len(setup.val_data), cfg.seed, fabric.global_rank, fabric.world_size)
    val_loader = DataLoader(setup.val_data, batch_size=max(cfg.batch_size, 64) if cfg.task == "classify" else cfg.batch_size,
                            sampler=val_sampler, num_workers=setup.workers, collate_fn=setup.collate_fn)
    task = setup.task

    lr = cfg.lr
    if lr == "auto":
        from pixelforge.engine.lr_find import lr_range_test

        finder = lr_range_test(setup.trained, task, train_loader, fabric, lambda: build_optimizer(cfg.optimizer, setup.param_groups(1.0), 1.0),
                               run, steps=cfg.lr_find_steps)
        lr = fabric.broadcast(finder.suggestion, src=0)  # every DDP rank must train at the same rate
        progress.info(f"--lr auto: learning-rate range test suggests {lr:.2e} (plot: {run / 'lr_find.png'})")
    optimizer = build_optimizer(cfg.optimizer, setup.param_groups(lr), lr)
    steps = len(train_loader)
    scheduler = build_scheduler(cfg.schedule, optimizer, steps * cfg.epochs, int(cfg.warmup_epochs * steps))
    fabric_model, optimizer = fabric.setup(setup.trained, optimizer, move_to_device=False)

    state = LoopState()
    if resuming and (run / "checkpoints" / "last.ckpt").exists():
        checkpoint = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = LoopState(**checkpoint["loop"])
        set_rng_state(checkpoint["rng"])
        progress.info(f"resuming {run} at epoch {state.epoch + 1}, batch {state.batch}")

    progress.info(f"training {cfg.model} ({cfg.task}, {cfg.strategy}, {setup.path}) on {setup.n_train} images, "
                  f"validating on {setup.n_val}; {fabric.world_size} process(es), precision {cfg.precision} "
                  f"({precision_reason})")
    loop = Loop(fabric, task, fabric_model, optimizer, scheduler, train_loader, val_loader, sampler, run, model,
                cfg.epochs, cfg.grad_clip, cfg.early_stopping, callbacks, setup.on_epoch_start, progress,
                {"model_name": cfg.model, "task": cfg.task, **setup.extra_checkpoint}, setup.channels_last)
    try:
        # A linear head on cached features is too small to split across threads (measured 5-10x faster on one).
        with torch_threads(1 if setup.path == "cached-features" else torch.get_num_threads()):
            state = loop.run(state)
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) and CPU allocator failures are RuntimeErrors
        if any(text in str(exc).lower() for text in ("out of memory", "can't allocate memory")):
            raise PixelforgeError(f"out of memory training {cfg.model} at batch size {cfg.batch_size}, "
                                  f"{cfg.img_size}px: lower --batch-size or --img-size") from None
        raise
    if fabric.global_rank == 0:
        _finish(run, cfg, state, setup, lr, task.monitor, progress)
    fabric.barrier()


def _check_classes(run: Path, classes: list[str]) -> None:
    path = run / "classes.json"
    before = rd.read_json(path)
    if before != classes:
        added, removed = sorted(set(classes) - set(before)), sorted(set(before) - set(classes))
        raise PixelforgeError(f"{path}: the data's classes differ from the run's (added: {added or 'none'}, "
                              f"removed: {removed or 'none'}); resume with the same data or start a new run")


def _finish(run: Path, cfg: TrainConfig, state: LoopState, setup: TaskSetup, lr: float, monitor: str,
            progress: EpochProgress) -> None:
    rows = rd.read_metrics(run / "metrics.csv")
    summary = {
        "monitor": monitor, "best_metric": state.best_metric,
        "best_val_accuracy": state.best_metric if monitor == "val_acc" else None,
        "best_epoch": state.best_epoch, "epochs_run": len(rows),
        "stopped_early": state.stopped_early, "path": setup.path, "lr": lr, "train_images": setup.n_train,
        "val_images": setup.n_val, "unreadable_images": setup.unreadable, "precision": cfg.precision,
        "seconds_training": round(sum(r["epoch_seconds"] or 0 for r in rows), 2),
    }
    rd.write_json(run / "summary.json", summary)
    if setup.unreadable:
        progress.info(f"{len(setup.unreadable)} unreadable image(s) skipped; listed in {run / 'summary.json'}")
    report = setup.write_report(run) if setup.write_report else None
    from pixelforge.tasks.classify.card import peak_memory, write_model_card

    if cfg.task == "classify":
        write_model_card(run, peak_memory=peak_memory())
    else:  # boxes and masks: a shorter card from the report's validation metrics
        from pixelforge.tasks.common.dense_card import write_dense_card

        write_dense_card(run, peak_memory=peak_memory())
    progress.info(f"best {monitor} {state.best_metric:.4f} at epoch {state.best_epoch}" + (f"; report: {report}" if report else ""))
