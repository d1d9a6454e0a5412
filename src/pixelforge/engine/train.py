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

from pixelforge.config import TrainConfig, build_config, load_config, save_config
from pixelforge.data.dataset import ImageDataset
from pixelforge.data.sources import DataSource, resolve_data
from pixelforge.data.splits import make_splits
from pixelforge.data.transforms import batch_mixer, decode_size, eval_transform, resolve_augment, train_transform
from pixelforge.engine import run_dir as rd
from pixelforge.engine.balance import build_train_sampler, check_balance
from pixelforge.engine.features import FeatureDataset, FeatureExtractor, extract_features
from pixelforge.engine.loop import EpochSampler, Loop, LoopState, set_rng_state
from pixelforge.engine.progress import EpochProgress
from pixelforge.engine.threads import single_threaded, single_threaded_collate, torch_threads
from pixelforge.engine.schedule import build_optimizer, build_scheduler
from pixelforge.errors import PixelforgeError
from pixelforge.models.classifier import build_classifier, check_img_size, check_weights_option
from pixelforge.tasks.classification import ClassificationTask, apply_strategy, param_groups

log = logging.getLogger("pixelforge")


@dataclass
class TrainResult:
    run_dir: Path
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    path: str  # "cached-features" or "end-to-end"
    lr: float


def default_workers() -> int:
    # Images are decoded once into RAM, so workers only run augmentations; on a small machine a worker process
    # competes with the model for the same cores, measured slower on 2 cores (benchmarks/).
    cores = os.cpu_count() or 1
    return 0 if cores <= 4 else min(8, cores // 2)


def prepare_data(cfg: TrainConfig) -> tuple[DataSource, list[str]]:
    """Resolve the data and give every image a split; the class list is the sorted set of training labels."""
    source = make_splits(resolve_data(cfg.data), cfg.val_fraction, cfg.test_fraction, cfg.seed)
    if not source.split("val"):  # given splits without val: carve one from train
        from dataclasses import replace

        unsplit = DataSource([replace(s, split=None) if s.split == "train" else s for s in source.samples],
                             source.classes, source.origin)
        source = make_splits(unsplit, cfg.val_fraction, 0.0, cfg.seed)
    train_labels = {s.label for s in source.split("train")}
    missing = sorted(set(source.classes) - train_labels)
    if missing:
        raise PixelforgeError(f"{source.origin}: class {missing[0]!r} has no training images; add some or remove it")
    return source, sorted(train_labels)


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
        cfg = TrainConfig(**{**cfg.model_dump(), **overrides}) if overrides else cfg
    else:
        cfg = build_config(config, data=data, **options)
    # Validate everything a user can get wrong before a run folder exists, so a typo leaves nothing behind.
    check_img_size(cfg.model, cfg.img_size)
    check_weights_option(cfg.weights)
    source, classes = prepare_data(cfg)
    check_balance(cfg, source.split("train"))
    if resume:
        _check_classes(run, classes)
    elif "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:
        run = _torchrun_run_dir(Path(cfg.out or Path("runs") / f"{cfg.model}-{Path(cfg.data).stem}"))
    else:
        run = rd.new_run_dir(cfg.out or Path("runs") / f"{cfg.model}-{Path(cfg.data).stem}")
    rd.write_json(run / "classes.json", classes)
    save_config(cfg, run / "config.yaml")
    started = time.perf_counter()
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, precision=_fabric_precision(cfg.precision),
                    strategy=_strategy(cfg), loggers=_tensorboard(run))
    fabric.launch(_fit, cfg, run, source, classes, bool(resume), callbacks or [])
    summary = rd.read_json(run / "summary.json")
    summary["seconds_total"] = round(time.perf_counter() - started, 2)
    rd.write_json(run / "summary.json", summary)
    return TrainResult(run, summary["best_val_accuracy"], summary["best_epoch"], summary["epochs_run"],
                       summary["seconds_total"], summary["path"], summary["lr"])


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


def _fit(fabric, cfg: TrainConfig, run: Path, source: DataSource, classes: list[str], resuming: bool,
         callbacks: list) -> None:
    if fabric.global_rank == 0 and not resuming:
        log.info("run folder: %s", run)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM saves a checkpoint like Ctrl-C
    fabric.seed_everything(cfg.seed, verbose=False)
    # Denormal floats (|x| < 1e-38) appear in early fine-tuning steps and run ~40x slower on x86 CPUs: measured
    # 5 vs 190 img/s for the quickstart's first epochs. Flushing them to zero changes no result we could measure.
    torch.set_flush_denormal(True)
    progress = EpochProgress(quiet=cfg.quiet or fabric.global_rank != 0)
    model = build_classifier(cfg.model, len(classes), cfg.weights, cfg.dropout)
    spec = model.spec
    short_side = decode_size(cfg.img_size, spec.crop_pct)
    augment = resolve_augment(cfg.augment, cfg.augment_options)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    train_set = ImageDataset(source.split("train"), class_to_idx, short_side,
                             train_transform(cfg.img_size, spec.mean, spec.std, augment))
    val_set = ImageDataset(source.split("val"), class_to_idx, short_side, eval_transform(cfg.img_size, spec.mean, spec.std))
    advance, close = progress.counter("decoding images", len(train_set) + len(val_set))
    unreadable = (train_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance)
                  + val_set.preload(ram_budget_gb=cfg.ram_budget_gb / 2, progress=advance))
    close()
    workers = default_workers() if cfg.workers is None else cfg.workers
    # Per-image transforms run on one thread (engine/threads.py: 3-50x faster on few cores); the model uses all.
    train_set.transform, val_set.transform = single_threaded(train_set.transform), single_threaded(val_set.transform)
    use_features = cfg.strategy == "linear" and cfg.cache_features is not False and fabric.world_size == 1
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(fabric.device)

    if use_features:
        path = "cached-features"
        progress.info(f"linear strategy: caching backbone features for {cfg.feature_views} augmented views per image")
        dim = model.num_features
        extractor = FeatureExtractor(model.backbone, fabric.device, cfg.channels_last)
        advance, close = progress.counter("extracting features", len(train_set) * cfg.feature_views + len(val_set))
        train_x, train_y = extract_features(model.backbone, train_set, cfg.feature_views, 64, workers,
                                            extractor=extractor, progress=advance)
        val_x, val_y = extract_features(model.backbone, val_set, 1, 64, workers, extractor=extractor, progress=advance)
        close()
        extractor.close()
        progress.info(f"backbone features computed by {extractor.name} ({extractor.reason})")
        assert train_x.shape[-1] == dim
        train_data, val_data, trained = FeatureDataset(train_x, train_y), FeatureDataset(val_x, val_y), model.head
        loader_workers = 0  # feature vectors are already in memory
    else:
        path = "end-to-end"
        train_data, val_data, trained, loader_workers = train_set, val_set, model, workers

    for param in model.parameters():  # everything registered with DDP; the strategy freezes below
        param.requires_grad_(True)
    apply_strategy(model, cfg.strategy, 0, cfg.unfreeze_every)
    sampler = build_train_sampler(cfg, train_set.samples, len(train_data), fabric.global_rank, fabric.world_size)
    train_loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler, num_workers=loader_workers,
                              persistent_workers=loader_workers > 0, drop_last=False, collate_fn=single_threaded_collate)
    val_sampler = EpochSampler(len(val_data), cfg.seed, fabric.global_rank, fabric.world_size)
    val_loader = DataLoader(val_data, batch_size=max(cfg.batch_size, 64), sampler=val_sampler, num_workers=loader_workers,
                            collate_fn=single_threaded_collate)
    task = ClassificationTask(cfg.label_smoothing, None if use_features else batch_mixer(augment, len(classes)))

    lr = cfg.lr
    if lr == "auto":
        from pixelforge.engine.lr_find import lr_range_test

        finder = lr_range_test(trained, task, train_loader, fabric, lambda: _optimizer(cfg, model, 1.0), run,
                               steps=cfg.lr_find_steps)
        lr = fabric.broadcast(finder.suggestion, src=0)  # every DDP rank must train at the same rate
        progress.info(f"--lr auto: learning-rate range test suggests {lr:.2e} (plot: {run / 'lr_find.png'})")
    optimizer = _optimizer(cfg, model, lr)
    steps = len(train_loader)
    scheduler = build_scheduler(cfg.schedule, optimizer, steps * cfg.epochs, int(cfg.warmup_epochs * steps))
    fabric_model, optimizer = fabric.setup(trained, optimizer, move_to_device=False)

    state = LoopState()
    if resuming and (run / "checkpoints" / "last.ckpt").exists():
        checkpoint = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        state = LoopState(**checkpoint["loop"])
        set_rng_state(checkpoint["rng"])
        progress.info(f"resuming {run} at epoch {state.epoch + 1}, batch {state.batch}")

    def on_epoch_start(epoch: int) -> None:
        if cfg.strategy == "gradual" and not use_features:
            trainable = apply_strategy(model, "gradual", epoch, cfg.unfreeze_every)
            progress.info(f"gradual: {trainable} of {len(model.stages())} backbone stages trainable")

    progress.info(f"training {cfg.model} ({cfg.strategy}, {path}) on {len(train_set)} images, validating on "
                  f"{len(val_set)}; {fabric.world_size} process(es), precision {cfg.precision}")
    loop = Loop(fabric, task, fabric_model, optimizer, scheduler, train_loader, val_loader, sampler, run, model,
                cfg.epochs, cfg.grad_clip, cfg.early_stopping, callbacks, on_epoch_start, progress,
                {"classes": classes, "model_name": cfg.model}, cfg.channels_last and not use_features)
    try:
        # A linear head on cached features is too small to split across threads (measured 5-10x faster on one).
        with torch_threads(1 if use_features else torch.get_num_threads()):
            state = loop.run(state)
    except RuntimeError as exc:  # torch.OutOfMemoryError (CUDA) and CPU allocator failures are RuntimeErrors
        if any(text in str(exc).lower() for text in ("out of memory", "can't allocate memory")):
            raise PixelforgeError(f"out of memory training {cfg.model} at batch size {cfg.batch_size}, "
                                  f"{cfg.img_size}px: lower --batch-size or --img-size") from None
        raise
    if fabric.global_rank == 0:
        _finish(run, cfg, state, path, lr, len(train_set), len(val_set), unreadable, progress)
    fabric.barrier()


def _optimizer(cfg: TrainConfig, model, lr: float):
    return build_optimizer(cfg.optimizer, param_groups(model, cfg.strategy, lr, cfg.backbone_lr_mult, cfg.weight_decay), lr)


def _check_classes(run: Path, classes: list[str]) -> None:
    path = run / "classes.json"
    before = rd.read_json(path)
    if before != classes:
        added, removed = sorted(set(classes) - set(before)), sorted(set(before) - set(classes))
        raise PixelforgeError(f"{path}: the data's classes differ from the run's (added: {added or 'none'}, "
                              f"removed: {removed or 'none'}); resume with the same data or start a new run")


def _finish(run: Path, cfg: TrainConfig, state: LoopState, path: str, lr: float, n_train: int, n_val: int,
            unreadable: list[str], progress: EpochProgress) -> None:
    rows = rd.read_metrics(run / "metrics.csv")
    summary = {
        "best_val_accuracy": state.best_metric, "best_epoch": state.best_epoch, "epochs_run": len(rows),
        "stopped_early": state.stopped_early, "path": path, "lr": lr, "train_images": n_train, "val_images": n_val,
        "unreadable_images": unreadable, "seconds_training": round(sum(r["epoch_seconds"] or 0 for r in rows), 2),
    }
    rd.write_json(run / "summary.json", summary)
    if unreadable:
        progress.info(f"{len(unreadable)} unreadable image(s) skipped; listed in {run / 'summary.json'}")
    from pixelforge.evaluation.report import write_run_report

    report = write_run_report(run)
    from pixelforge.evaluation.model_card import peak_memory, write_model_card

    write_model_card(run, peak_memory=peak_memory())
    progress.info(f"best val accuracy {state.best_metric:.4f} at epoch {state.best_epoch}; report: {report}")
