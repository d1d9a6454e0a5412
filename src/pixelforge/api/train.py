"""`pixelforge.train`: from a config to a finished run folder.

Builds the task's config (the registry picks the task's class), lets the task check it and read the data, makes
the run folder, hands the task's setup (its model, data and fastest exact path) to `engine/fit.py`, which trains
it under Fabric (one process, or DDP), and finishes with the summary, the task's report and its model card.
Each step is a plain function below; the order is the story of a run.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

from pixelforge.config import RunConfig, read_config_file, save_config
from pixelforge.data import prefetch
from pixelforge.engine.cpu_memory import peak_memory
from pixelforge.engine.main_guard import check_main_guard
from pixelforge.engine.progress import EpochProgress
from pixelforge.engine.quiet import silenced
from pixelforge.errors import (Interrupted, PixelforgeError, is_out_of_memory, memory_that_ran_out, sigterm_as_interrupt,
                              signal_of)
from pixelforge.runs import folder as rd
from pixelforge.tasks.base import Task
from pixelforge.tasks.config import build_config, load_config
from pixelforge.tasks.registry import get_task, task_names

# torch, and what imports it (the engine, precision), is imported inside `train` after the data is resolved: the
# task decodes the photos in a helper process during those seconds (data/prefetch.py; issue 20, lever L26).

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
    monitor_label: str = ""  # how the task names its monitor ("val accuracy")


def train(data: str | None = None, *, config: str | Path | None = None, resume: str | Path | None = None,
          callbacks: list | None = None, **options) -> TrainResult:
    """Train any registered task and write a run folder. Options are the task's config fields (the CLI's options;
    `task` chooses the task, default classify). `callbacks` are hooks (engine/hooks.py: `on_epoch_start(ctx)`, ..., `StopTraining` to end early).

    The run is seeded by its `seed`; the caller's global RNGs (torch, numpy, random) are left as they were, neither
    reseeded nor advanced, as are torch's thread count, default dtype and grad mode (engine/process_state.py).
    Lightning's `seed_everything` reseeds them for the rest of the process; a notebook seeding its own work after a
    `train` would then draw what the run chose, so here the run's seed stays the run's.

    Returns a `TrainResult`: `run_dir` (the run folder, a `Path`), `monitor` and `best_metric` (the validation
    metric that chose best.ckpt and its best value), `best_epoch`, `epochs_run`, `seconds`, and
    `best_val_accuracy` (classification; None for the other tasks). Paths may be given as `str` or `Path`.

    Example:
        >>> result = train("digits", model="simple_cnn", weights="none", strategy="full", img_size=32, epochs=3,
        ...                out="runs/doc")  # doctest: +SKIP
        >>> result.best_val_accuracy > 0.5  # doctest: +SKIP
        True
    """
    with silenced(bool(options.get("quiet"))):  # the checks and the data's warnings too
        return _train_options(data, config, resume, callbacks, options)


def _train_options(data, config, resume, callbacks, options: dict) -> TrainResult:
    data, options = _as_str(data), {key: _as_str(value) for key, value in options.items()}
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):  # else "object is not iterable" in fit
        raise PixelforgeError(f"callbacks: a list of hooks (engine/hooks.py), not a {type(callbacks).__name__}; "
                              f"pass callbacks=[hook]")
    if resume:
        run = rd.require_run(resume)
        cfg = load_config(run / "config.yaml")
        overrides = {k: v for k, v in options.items() if v is not None}
        if data is not None:
            overrides["data"] = data
        if overrides.get("task", cfg.task) != cfg.task:  # else one line listing every key the other task lacks
            raise PixelforgeError(f"--task {overrides['task']}: {run} is a {cfg.task} run and resumes as one; leave "
                                  f"--task out, or train a new run")
        _check_resumed_epochs(run, cfg.epochs, overrides.get("epochs"), cfg.schedule)
        cfg = build_config(None, **{**cfg.model_dump(), **overrides}) if overrides else cfg
    else:
        cfg = _config_with_parent(config, data, options)
    # Validate everything a user can get wrong before a run folder exists, so a typo leaves nothing behind.
    task = get_task(cfg.task)
    if not resume and cfg.out:
        rd.check_run_out(cfg.out)
    task.check(cfg)
    if cfg.devices * cfg.num_nodes > 1 and "LOCAL_RANK" not in os.environ:  # spawned processes re-import the script
        check_main_guard()
    source, classes = task.prepare_data(cfg)
    if "torch" not in sys.modules:  # the imports ahead are what the decoding hides behind (data/prefetch.py)
        task.start_decoding(cfg, source)
    try:
        with silenced(cfg.quiet):  # quiet=True: nothing printed (engine/quiet.py); the CLI's log lines still come
            return _train(task, cfg, source, classes, resume, callbacks)
    finally:
        prefetch.discard()  # whatever the datasets did not take (another split, a run that ended early)


def _as_str(value):
    """A `Path` (or a list of them) as the string the config's path keys take: `train(Path("photos"), out=Path(...))`
    reads as `train("photos", out="...")`."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_as_str(item) for item in value)
    return value


def _train(task: Task, cfg: RunConfig, source, classes: list[str], resume, callbacks) -> TrainResult:
    from pixelforge.engine.process_state import restored_afterwards

    task.check_data(cfg, source)
    if resume:
        run = rd.require_run(resume)
    elif "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ:
        run = _torchrun_run_dir(Path(cfg.out or Path("runs") / task.run_name(cfg)))
    else:
        run = rd.new_run_dir(cfg.out or Path("runs") / task.run_name(cfg))
    # Under torchrun every process trains in the one folder; the first holds it for them all. The caller's RNGs and
    # settings are put back after the report too (building the model to calibrate and evaluate draws from them).
    with rd.training_lock(run) if os.environ.get("RANK", "0") == "0" else nullcontext(), restored_afterwards():
        if resume:
            _check_classes(run, classes)
            finished = _finished_run(run, cfg)
            if finished is not None:
                return finished
            _check_resumable(run)
        return _train_in(task, cfg, source, classes, run, resume, callbacks)


def _train_in(task: Task, cfg: RunConfig, source, classes: list[str], run: Path, resume, callbacks) -> TrainResult:
    """Train in `run` and write its report. Ctrl-C or SIGTERM inside the epochs is the loop's to save and say; one
    before them (the data decoded, the model built) or in the report says here how to continue (SIGTERM killed the
    process there without a word, and Ctrl-C said only "interrupted")."""
    stage = ["before its epochs"]  # the one `_train_and_report` is in
    with sigterm_as_interrupt():
        try:
            return _train_and_report(task, cfg, source, classes, run, resume, callbacks, stage)
        except (KeyboardInterrupt, BrokenPipeError) as interrupt:  # BrokenPipeError: our output's reader went away
            raise Interrupted(f"{run}: interrupted {stage[0]}; what was trained is saved: resume with "
                              f"`pixelforge train --resume {run}`", signal_of(interrupt)) from None
        except Exception as exc:  # the epochs' own out-of-memory line is the engine's (engine/fit.py)
            if stage[0] == "before its epochs" or not is_out_of_memory(exc):
                raise
            raise PixelforgeError(f"{run}: out of {memory_that_ran_out(exc)} {stage[0]}, scoring the best "
                                  f"checkpoint; free the memory other programs hold and write the report with "
                                  f"`pixelforge train --resume {run}`") from None


def _train_and_report(task: Task, cfg: RunConfig, source, classes: list[str], run: Path, resume, callbacks,
                      stage: list[str]) -> TrainResult:
    from pixelforge.engine.fit import fit
    from pixelforge.engine.precision import resolve_precision

    try:
        rd.write_json(run / "classes.json", classes)
        save_config(_with_absolute_paths(cfg), run / "config.yaml")
        started = time.perf_counter()
        # config.yaml keeps `auto` (a resume on other hardware decides again); the run uses what it resolves to.
        precision, why = resolve_precision(cfg.precision, fp32_reason=task.bf16_reason(cfg),
                                           accelerator=cfg.accelerator, probe=_precision_probe(task, cfg, len(classes)))
        cfg = cfg.model_copy(update={"precision": precision})
        fit_config = _fit_config(cfg, why, task.trained_name(cfg))
        result = fit(partial(task.build_setup, cfg, source, classes), run, fit_config, resume=bool(resume),
                     hooks=callbacks or [], checkpoint_meta={"model_name": cfg.model, "task": cfg.task})
    except PixelforgeError:
        if not resume:  # a mistake found while the data is decoded (a mask of another size): nothing half-written
            rd.discard_unstarted_run(run)
        raise
    stage[0] = "in its report (its epochs are trained)"
    if result.global_rank == 0:  # under torchrun every process returns here; one writes
        _finish(run, cfg, result, task, list(getattr(source, "broken_links", [])))
    seconds = round(time.perf_counter() - started, 2)
    if result.global_rank == 0:
        rd.write_json(run / "summary.json", {**rd.read_json(run / "summary.json"), "seconds_total": seconds})
    return TrainResult(run, result.best_metric if result.monitor == "val_acc" else None, result.best_epoch,
                       result.epochs_run, seconds, result.path, result.lr, result.monitor, result.best_metric,
                       task.monitor_label)


# The keys that name a user's file or folder which later commands read again from the run's config.yaml: export's
# parity photos (`data`), a style run's style image and loss-network weights, a groups CSV, templates, FID weights.
PATH_KEYS = ("data", "style", "loss_net_weights", "groups", "templates_file", "fid_weights")


def _with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """`cfg` with its relative paths made absolute, for config.yaml: `export`, `evaluate`, `video` or `--resume` of
    the run from another folder would otherwise look for `../data` beside themselves. A built-in data set's name
    (`digits`) and a value that is no existing path (a CSV column name) are kept as given."""
    from pixelforge.data.builtin import BUILTIN_DATASETS

    update = {}
    for key in PATH_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, str) and value and value not in BUILTIN_DATASETS and not Path(value).is_absolute() \
                and Path(value).expanduser().exists():
            update[key] = str(Path(value).expanduser().resolve())
    return cfg.model_copy(update=update) if update else cfg


def _precision_probe(task, cfg, num_classes: int):
    """`precision: auto`'s measurement of this model on this CPU (engine/precision_probe.py), if the task has one."""
    make_model = task.bf16_probe_model(cfg, num_classes)
    if make_model is None:
        return None
    from pixelforge.data.builtin import cache_root
    from pixelforge.engine.precision_probe import probe_precision

    return partial(probe_precision, make_model, cfg.model, cfg.img_size, min(cfg.batch_size, 16), num_classes,
                   cache_root())


def _config_with_parent(config: str | Path | None, data: str | None, options: dict) -> RunConfig:
    """The run's config. With `continue_from` (an option or the config file's), the keys neither the file nor the
    options give are the parent run's (its model, size, recipe), except data, out and the `continue_*` keys, which
    say how this run links to its parent, not how the parent was trained; and except the keys this run does not read
    (`Task.unread`: the parent's `unfreeze_every` in a step with `--strategy full`), which keep their defaults
    instead of being refused as if the user had given them."""
    chosen = {**(read_config_file(config) if config else {}), **{k: v for k, v in options.items() if v is not None}}
    parent_dir = chosen.get("continue_from")
    if not parent_dir:
        return build_config(config, data=data, **options)
    parent = load_config(rd.require_run(parent_dir) / "config.yaml").model_dump()
    wanted = chosen.get("task", parent["task"])  # no --task: the parent's
    if "continue_from" not in get_task(wanted).config_class.model_fields:
        # was "continue_from: Extra inputs are not permitted", or "continues only from a caption run" for a
        # task that continues from no run at all
        able = ", ".join(n for n in task_names() if "continue_from" in get_task(n).config_class.model_fields)
        raise PixelforgeError(f"--continue-from {parent_dir}: a {parent['task']} run; {wanted} runs do not continue "
                              f"from another run (--continue-from is for {able} runs)")
    if wanted != parent["task"]:  # else one line listing every key this task lacks
        raise PixelforgeError(f"--continue-from {parent_dir}: a {parent['task']} run; a {chosen['task']} run "
                              f"continues only from a {chosen['task']} run")
    inherited = {k: v for k, v in parent.items() if k not in ("data", "out") and not k.startswith("continue_")}
    cfg = build_config(config, inherited=inherited, data=data, **options)
    unread = [key for key in get_task(cfg.task).unread(cfg) if key in inherited and key not in chosen]
    if unread:
        cfg = build_config(config, inherited={k: v for k, v in inherited.items() if k not in unread}, data=data,
                           **options)
    return cfg


def _fit_config(cfg: RunConfig, precision_reason: str, name: str):
    """The engine's `FitConfig`: the config's fields of the same names, plus what fit cannot infer."""
    from pixelforge.engine.fit import FitConfig

    shared = {f.name: getattr(cfg, f.name) for f in fields(FitConfig) if f.name in RunConfig.model_fields}
    # Frozen stages get no gradient, so DDP must tolerate unused parameters for the linear and gradual strategies.
    return FitConfig(**shared, precision_reason=precision_reason, find_unused_parameters=cfg.strategy != "full",
                     name=name, tags=(cfg.task, cfg.strategy))


def _torchrun_run_dir(run: Path) -> Path:
    """Under torchrun every process runs `train`; they must agree on one folder, so no suffix is added."""
    if os.environ.get("RANK", "0") == "0" and run.exists() and any(run.iterdir()):
        raise PixelforgeError(f"{run}: folder exists and is not empty; under torchrun --out must name a new folder")
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    return run


def _check_resumed_epochs(run: Path, planned: int, asked: int | None, schedule: str) -> None:
    """A resumed run continues its learning-rate schedule, which reaches 0 at the planned epoch: more epochs would
    stretch it after the fact (the rate jumps from 0 back up mid-cosine; onecycle cannot step past its end), so
    they are refused. Fewer epochs end the run sooner. A constant rate (after its warmup) has no end: such a run
    can be resumed for as many epochs as wanted, round after round."""
    if asked is not None and asked > planned and schedule != "constant":
        raise PixelforgeError(f"--epochs {asked}: {run} was planned for {planned} epochs and its learning-rate schedule "
                              f"ends there; resume with --epochs {planned} or fewer, or start a new run")


def _finished_run(run: Path, cfg: RunConfig) -> TrainResult | None:
    """The result of a run with nothing left to resume (said in one line), or None. A run is finished when its
    summary.json has `seconds_total`, the last thing `train` writes (a run stopped in its report has none, and
    resuming it writes the report), and its epochs are all trained or it stopped early."""
    path = run / "summary.json"
    summary = rd.read_json(path) if path.is_file() else {}
    if "seconds_total" not in summary or (summary["epochs_run"] < cfg.epochs and not summary["stopped_early"]):
        return None
    stopped = f", stopped early: {summary.get('stop_reason') or 'by a hook'}" if summary["stopped_early"] else ""
    EpochProgress(quiet=cfg.quiet).info(f"{run}: finished ({summary['epochs_run']} of {cfg.epochs} epochs{stopped}); "
                                        f"nothing to resume")
    return TrainResult(run, summary.get("best_val_accuracy"), summary["best_epoch"], summary["epochs_run"],
                       summary["seconds_total"], summary.get("path", ""), summary.get("lr", float("nan")),
                       summary["monitor"], summary["best_metric"], get_task(cfg.task).monitor_label)


def _check_resumable(run: Path) -> None:
    """A run resumes from checkpoints/last.ckpt; without one it trains from the first epoch, which is right only
    while metrics.csv records no epoch (stopped before its first checkpoint, whose rows are written after it). With
    epochs recorded and the checkpoint gone, training again would append a second epoch 1, 2... to them."""
    last, metrics = run / "checkpoints" / "last.ckpt", run / "metrics.csv"
    if not last.is_file() and (rows := rd.read_metrics(metrics)):
        raise PixelforgeError(f"{last}: missing, though {metrics} records {len(rows)} trained epoch(s), so the run "
                              f"cannot continue where it stopped; put the checkpoint back, or train a new run")


def _check_classes(run: Path, classes: list[str]) -> None:
    path = run / "classes.json"
    before = rd.read_json(path)
    if before != classes:
        added, removed = sorted(set(classes) - set(before)), sorted(set(before) - set(classes))
        raise PixelforgeError(f"{path}: the data's classes differ from the run's (added: {added or 'none'}, "
                              f"removed: {removed or 'none'}); resume with the same data or start a new run")


def _finish(run: Path, cfg: RunConfig, result, task: Task, broken_links: list[str]) -> None:
    progress = EpochProgress(quiet=cfg.quiet)
    monitor = result.monitor
    rows = rd.read_metrics(run / "metrics.csv")
    training_seconds = sum(r["epoch_seconds"] or 0 for r in rows)
    summary = {
        "monitor": monitor, "best_metric": result.best_metric,
        "best_val_accuracy": result.best_metric if monitor == "val_acc" else None,
        "best_epoch": result.best_epoch, "epochs_run": len(rows),
        "stopped_early": result.stopped_early, "stop_reason": result.stop_reason, "path": result.path, "lr": result.lr, "train_images": result.n_train,
        "val_images": result.n_val, "unreadable_images": result.unreadable, "broken_links": broken_links,
        "precision": cfg.precision,
        "seconds_training": round(training_seconds, 2),
    }
    extraction = result.feature_extraction_seconds
    if extraction is not None:  # the head trained on features computed first: part of what the user waited for
        summary["feature_extraction_seconds"] = extraction
    # Training images per second of what the user waited for (epochs, and feature extraction where there was
    # some); metrics.csv's head_images_per_s on the cached-features path counts only the head's work.
    waited = training_seconds + (extraction or 0.0)  # unrounded: a head's epochs can take milliseconds
    summary["images_per_s"] = round(result.n_train * len(rows) / waited, 2) if waited > 0 else None
    rd.write_json(run / "summary.json", summary)
    if result.unreadable:
        progress.info(f"{len(result.unreadable)} unreadable image(s) skipped; listed in {run / 'summary.json'}")
    if broken_links:
        progress.info(f"warning: {len(broken_links)} symbolic link(s) in the data point nowhere and were skipped "
                      f"(first: {broken_links[0]}); listed in {run / 'summary.json'}")
    task.after_fit(run, cfg, progress)
    report = task.write_report(run)
    task.write_card(run, peak_memory=peak_memory())
    progress.info(f"best {monitor} {result.best_metric:.4f} at epoch {result.best_epoch}" + (f"; report: {report}" if report else ""))
