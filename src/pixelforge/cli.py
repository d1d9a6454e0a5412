"""The `pixelforge` command line: a thin Typer layer over the Python API (`pixelforge.train/evaluate/predict`).

User mistakes surface as `PixelforgeError`; `main` prints its one line and exits with code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from pixelforge.errors import Interrupted, PixelforgeError, os_error_line, signal_of


class _ClosedPipe(Exception):
    """Our output's reader went away (`pixelforge predict ... --json | head -1`). Raised past click, which would
    otherwise turn the BrokenPipeError into a bare exit code 1, to `main`, which stops quietly with SIGPIPE's code."""


class _Group(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise _ClosedPipe() from None


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pixelforge: the deep-learning image workflow, from a folder of photos to a deployed model.")
data_app = typer.Typer(no_args_is_help=True, help="Check, preview, convert and generate datasets.")
app.add_typer(data_app, name="data")


def _setup_logging(quiet: bool = False) -> None:
    """Log lines to stderr; `quiet` keeps only warnings. (Training's --quiet is not this: it means log lines instead
    of progress bars, so training logs at INFO either way.)"""
    logging.basicConfig(level=logging.INFO if not quiet else logging.WARNING, format="%(message)s",
                        handlers=[_StopOnClosedPipe(sys.stderr)])
    # Lightning's top logger has a handler of its own; passed on to ours as well, each of its lines printed twice.
    logging.getLogger("lightning").propagate = False


class _StopOnClosedPipe(logging.StreamHandler):
    """A log line to a closed pipe stops the command (as it does the progress lines; a training run saves first)
    instead of logging's "--- Logging error ---" and going on with nobody reading."""

    def handleError(self, record):  # noqa: N802 - logging's name
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            raise
        super().handleError(record)


LR_FIND_HELP = {  # lr-find is classify's range test
    "data": "folder of class subfolders (optionally inside train/val/test), a CSV path,label[,split][,group], or "
            "digits|shapes.",
    "model": "Backbone name (see `pixelforge models`); default tf_efficientnet_lite0.",
    "weights": "imagenet | none | PATH to .safetensors/.pth.",
    "strategy": "linear (frozen backbone) | full | gradual (unfreeze stage by stage).",
}


def train(data: Optional[str] = None, config: Optional[Path] = None, resume: Optional[Path] = None, **options) -> None:
    """Train a model for any task (`--task`; `pixelforge tasks` lists them) and write a run folder: config,
    checkpoints, metrics and a report. Options that name tasks apply to those tasks only."""
    # The options are the run config's keys (`pixelforge.config.RunConfig`, `tasks/<name>/config.py`), made into
    # options by `cli_options.py`: declared once, in the models.
    from pixelforge.api.train import train as run_train
    from pixelforge.cli_options import train_options
    from pixelforge.runs.files import run_task_name
    from pixelforge.tasks.registry import get_task

    _setup_logging()  # --quiet: the epoch lines come as log lines (engine/progress.py), so INFO stays on
    result = run_train(data, config=config, resume=resume, **train_options(options))
    metric = get_task(run_task_name(result.run_dir)).monitor_label or result.monitor
    typer.echo(f"run folder: {result.run_dir}  best {metric}: {result.best_metric:.4f}  "
               f"report: {result.run_dir / 'report.html'}")


def _register_train() -> None:
    import inspect

    from pixelforge.cli_options import explicit_train_parameters, train_parameters

    train.__signature__ = inspect.Signature(train_parameters(explicit_train_parameters()))
    app.command("train")(train)


_register_train()


def _episodic_only(task: Optional[str], run, data, gt, predictions) -> bool:
    """`evaluate --task T --data D` alone, for a task whose evaluation is episodic (it has no runs to score)."""
    if task is None or data is None or run is not None or gt is not None or predictions is not None:
        return False
    from pixelforge.tasks.base import Task
    from pixelforge.tasks.registry import get_task

    return type(get_task(task)).evaluate_episodes is not Task.evaluate_episodes


@app.command()
def evaluate(
    run: Optional[Path] = typer.Argument(None, help="Run folder written by `pixelforge train` (omit with --gt/--predictions)."),
    data: Optional[str] = typer.Option(None, help="Data to score (default: the run's own test, else validation split); "
                                                  "the run's own training images are left out of it (classify, "
                                                  "detect, segment, instance, denoise, compress, caption, clip)."),
    split: Optional[str] = typer.Option(None, help="train | val | test (default: test, else val, else all)."),
    out: Optional[Path] = typer.Option(None, help="Folder for figures and metrics (default RUN/eval-SPLIT; another "
                                                  "evaluation's folder is kept and RUN/eval-SPLIT-2... used); never "
                                                  "overwritten."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with all metrics to stdout."),
    groups: Optional[str] = typer.Option(None, help="Per-group metrics by this CSV column, or a folder,group mapping .csv."),
    compare: Optional[Path] = typer.Option(None, help="Baseline run: add a before/after table of the group metrics."),
    include_train: bool = typer.Option(False, "--include-train",
                                       help="With --data (classify, detect, segment, instance, denoise, compress, "
                                            "caption, clip): "
                                            "also score the run's own training images (left out by default, and "
                                            "counted)."),
    task: Optional[str] = typer.Option(None, help="With --gt/--predictions: detect | segment | instance."),
    gt: Optional[Path] = typer.Option(None, help="detect/instance: ground-truth COCO json; segment: folder of truth mask PNGs."),
    predictions: Optional[Path] = typer.Option(None, help="detect: COCO results json; segment: folder of predicted masks."),
    num_classes: Optional[int] = typer.Option(None, help="segment with --gt: number of classes (default: the classes.json/.txt in or above --gt)."),
    ignore_index: Optional[int] = typer.Option(None, help="segment with --gt: mask value to leave out."),
    classifier: Optional[Path] = typer.Option(None, help="gan: classification run that judges conditional samples."),
    n: Optional[int] = typer.Option(None, help="gan: images per side for FID/KID and the real-vs-real floor."),
    beam: Optional[int] = typer.Option(None, min=1, max=10, help="caption: beam width (1 greedy; default the run's)."),
    ways: Optional[int] = typer.Option(None, min=2, help="fewshot with --data: classes per episode (N-way, 5)."),
    shots: Optional[int] = typer.Option(None, min=1, help="fewshot with --data: support images per class (K-shot, 5)."),
    episodes: Optional[int] = typer.Option(None, min=1, help="fewshot with --data: episodes averaged (600)."),
    queries: Optional[int] = typer.Option(None, min=1, help="fewshot with --data: query images per class (15)."),
    seed: Optional[int] = typer.Option(None, help="fewshot with --data: seed of the episode sampler (0)."),
    model: Optional[str] = typer.Option(None, help="fewshot with --data: backbone (tf_efficientnet_lite2)."),
    refine: Optional[int] = typer.Option(None, min=0, help="compress: steps of latent refinement per image (0)."),
    refine_lr: Optional[float] = typer.Option(None, help="compress: learning rate of the refinement (0.08)."),
) -> None:
    """Score a run with its task's metrics (classify: accuracy, F1, calibration; detect: COCO mAP; segment: mIoU,
    Dice; caption: BLEU, CIDEr; denoise: PSNR, SSIM; compress: bpp vs PSNR; gan: FID, KID; ...), score existing
    predictions against ground truth with --task, --gt and --predictions, or run few-shot episodes with --task
    fewshot --data."""
    _setup_logging(as_json)
    from pixelforge.tasks.registry import get_task

    episodic = {"ways": ways, "shots": shots, "episodes": episodes, "queries": queries, "seed": seed, "model": model}
    if any(v is not None for v in episodic.values()) or _episodic_only(task, run, data, gt, predictions):
        # episodic few-shot: no run (commands/fewshot.py)
        from pixelforge.commands.fewshot import evaluate_episodes_command

        unused = {"RUN": run, "--split": split, "--out": out, "--groups": groups, "--compare": compare, "--gt": gt,
                  "--predictions": predictions}
        return evaluate_episodes_command(task, data, as_json, unused=unused, **episodic)
    if gt is not None or predictions is not None:
        from pixelforge.api.score_files import score_files

        options = {"num_classes": num_classes, "ignore_index": ignore_index}
        metrics = score_files(task, gt, predictions, **{k: v for k, v in options.items() if v is not None})
        typer.echo(json.dumps(metrics) if as_json else get_task(task).format_metrics(metrics))
        return
    if run is None:
        raise PixelforgeError("evaluate: give a RUN folder, or --task with --gt and --predictions")
    if out is not None:
        from pixelforge.runs.folder import output_path

        output_path(out, out)  # an existing --out is refused before the run is loaded
    from pixelforge.api.evaluate import evaluate as run_evaluate
    from pixelforge.runs.files import run_task_name

    # A run is scored by its own task: another --task would be ignored (an unknown one is refused by get_task).
    if task is not None and type(get_task(task)) is not type(get_task(run_task_name(run))):
        raise PixelforgeError(f"{run}: a {run_task_name(run)} run, scored with its own task's metrics; --task "
                              f"{task} applies only with --gt and --predictions (or fewshot with --data)")
    options = {"groups": groups, "compare": compare, "include_train": include_train or None, "classifier": classifier,
               "n": n, "beam": beam, "refine": refine, "refine_lr": refine_lr}
    result = run_evaluate(run, data=data, split=split, out=out, **{k: v for k, v in options.items() if v is not None})
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    typer.echo(get_task(run_task_name(run)).format_metrics(result.metrics))
    typer.echo(f"figures: {result.out_dir}")
    if result.unreadable:  # only --json listed them: the metrics above silently covered fewer images
        typer.echo(f"warning: {len(result.unreadable)} unreadable image(s) left out of these metrics (first: "
                   f"{result.unreadable[0]}); --json lists them", err=True)


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder, or a package folder from `pixelforge export` (runs without torch)."),
    paths: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="classify: how many labels per image (1)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list to stdout."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="classify: write path,label,score rows to this CSV file."),
    out: Optional[Path] = typer.Option(None, help="box, mask and image tasks: folder for annotated images, masks, "
                                                  "results (default RUN/predictions for a run, ./predictions for a "
                                                  "package; predictions-2... when it exists): never overwritten."),
    score_threshold: Optional[float] = typer.Option(None, help="detect: keep boxes scoring at least this (0.3)."),
    nms_iou: Optional[float] = typer.Option(None, help="detect: overlap (IoU) above which a lower-scoring box of the same class is dropped."),
    beam: Optional[int] = typer.Option(None, min=1, max=10, help="caption: beam width (1 greedy; default the run's)."),
    precision: Optional[str] = typer.Option(None, help="package: fp32 | int8 | fp16 (default: the package's "
                                                       "default, int8 when it has one)."),
) -> None:
    """Predict with a trained run, or with an exported package (ONNX Runtime, no torch): labels (classify), boxes
    and COCO results (detect), mask PNGs (segment, instance), captions (caption), clean images (denoise),
    stylized images (style).

    A file that gives no prediction (not an image, unreadable) is reported on stderr as `PATH: error: REASON`.
    Exit code 0: every file was predicted; 1: some were, some failed (the predictions are still printed or
    written); 2: none was."""
    from pixelforge.runs.folder import output_path

    if csv_file is not None and csv_file.exists():
        raise PixelforgeError(f"{csv_file}: already exists; choose a new --csv (outputs are never overwritten)")
    from pixelforge.deploy.runtime.base import PACKAGE_PREDICTIONS
    from pixelforge.deploy.runtime.package import is_package

    asked_out = out
    from_package = (run / "package.json").is_file() or is_package(run)  # ONNX Runtime, no torch
    # box, mask and image tasks write there (a run's own folder; a package is never written into); a second call
    # writes beside it
    out = output_path(out, PACKAGE_PREDICTIONS if from_package else run / "predictions")
    out_existed = out.exists()  # an empty --out the user made is theirs: kept even when nothing is written into it
    _setup_logging(True)
    logging.getLogger("pixelforge").setLevel(logging.ERROR)  # an unreadable file is reported below, once, not also logged
    options = {"top_k": top_k, "score_threshold": score_threshold, "nms_iou": nms_iou, "beam": beam}
    options = {k: v for k, v in options.items() if v is not None}
    with _warning_lines():  # a multi-frame file: one "warning:" line naming it
        if from_package:
            from pixelforge.deploy.commands import predict_any_package

            results, describe = predict_any_package(run, paths, out, {**options, "precision": precision})
        else:
            if precision is not None:
                raise PixelforgeError(f"{run}: --precision picks one of a package's models; a run predicts with its "
                                      f"PyTorch model: drop --precision, or `pixelforge export {run}` first")
            from pixelforge.api.predict import predict as run_predict
            from pixelforge.runs.files import run_task_name
            from pixelforge.tasks.registry import get_task

            results = run_predict(run, paths, out=out, **options)
            describe = get_task(run_task_name(run)).describe_prediction
    failed = [r for r in results if r.get("error")]
    if failed and len(failed) == len(results):
        if not out_existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # made for these predictions and left empty: an empty folder would read as a result
        first = _failure_line(failed[0]).replace(": error: ", ": ", 1)  # one "error:" on the line: the prefix
        # "predicted", not "readable": a file may be refused for another reason than decoding (its bit depth)
        raise PixelforgeError(f"none of the {len(failed)} file(s) given could be predicted: {first}"
                              + (f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""))
    if csv_file:
        _write_csv(csv_file, results)
    if as_json:
        typer.echo(json.dumps(results))
    elif not csv_file:
        for r in results:
            if not r.get("error"):
                typer.echo(f"{r['path']}: {describe(r)}")
        if out.is_dir():  # box and mask tasks write their pictures and results there
            typer.echo(f"outputs: {out}")
    if asked_out is not None and not out.exists():  # labels and captions are printed: say so, not nothing at all
        typer.echo(f"warning: --out {asked_out}: nothing written there, this task's predictions are printed "
                   f"(--json, or --csv for labels, to keep them in a file)", err=True)
    for r in failed:
        typer.echo(_failure_line(r), err=True)
    if failed:
        raise typer.Exit(1)


@contextmanager
def _warning_lines():
    """Print the block's `MultiFrameWarning`s as `warning: PATH: ...` lines on stderr (not Python's two-line
    `file:line: Category: message` + source form); any other warning is shown as Python would."""
    import warnings

    from pixelforge.data.images import MultiFrameWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MultiFrameWarning)
        yield
    for w in caught:
        if issubclass(w.category, MultiFrameWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _failure_line(result: dict) -> str:
    """`PATH: error: REASON`, the path once (runtimes' messages often start with it already)."""
    path, reason = str(result["path"]), str(result["error"])
    if reason.startswith(f"{path}: "):
        reason = reason[len(path) + 2:]
    return f"{path}: error: {reason}"


def _write_csv(path: Path, results: list[dict]) -> None:
    import csv

    if any("label" not in r and "error" not in r for r in results):
        raise PixelforgeError("--csv: only for tasks that predict one label per image (classify)")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "score"])
        writer.writerows([r["path"], r.get("label"), r.get("score")] for r in results)


@app.command()
def tasks() -> None:
    """List the tasks `--task` accepts (the task registry), with what each one reads."""
    from pixelforge.tasks.registry import TASKS

    for name, cls in sorted(TASKS.items()):
        typer.echo(f"{name:10s} {cls.description}")


@app.command()
def models(img_size: int = typer.Option(224, help="Input size for the GFLOPs column.")) -> None:
    """List the backbones: parameters, GFLOPs at --img-size, and where ImageNet weights come from."""
    from rich.console import Console
    from rich.table import Table

    from pixelforge.models.catalog import describe_backbones

    table = Table("model", "params (M)", f"GFLOPs @{img_size}", "min size", "imagenet weights from")
    table.columns[0].no_wrap = True
    for row in describe_backbones(img_size):
        table.add_row(row["name"], f"{row['params_m']:.1f}", f"{row['gflops']:.2f}", str(row["min_size"]), row["weights_from"])
    Console(width=None if sys.stdout.isatty() else 140).print(table)  # piped output: don't wrap to 80 columns


@app.command("lr-find")
def lr_find(
    data: str = typer.Option(..., help=LR_FIND_HELP["data"]),
    model: Optional[str] = typer.Option(None, help=LR_FIND_HELP["model"]),
    weights: Optional[str] = typer.Option(None, help=LR_FIND_HELP["weights"]),
    strategy: Optional[str] = typer.Option(None, help=LR_FIND_HELP["strategy"]),
    img_size: Optional[int] = typer.Option(None, help="Input size in pixels."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    seed: Optional[int] = typer.Option(None, help="Random seed (the head's initialisation, the batch order)."),
    steps: Optional[int] = typer.Option(None, help="Steps of the range test, from 1e-7 to 1 (default 100)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the plot (default lr_find.png, or lr_find-2.png... "
                                       "when it exists); never overwritten."),
) -> None:
    """Run a learning-rate range test (fastai's lr_find) and plot loss against learning rate."""
    from pixelforge.runs.folder import output_path
    from pixelforge.tasks.classify.lr_find import find_lr_for_config

    out = output_path(out, "lr_find.png")
    _setup_logging()
    result = find_lr_for_config(out, data=data, model=model, weights=weights, strategy=strategy,
                                img_size=img_size, batch_size=batch_size, seed=seed,
                                lr_find_steps=steps)
    typer.echo(f"suggested learning rate: {result.suggestion:.2e}  plot: {result.plot}")


@app.command()
def quickstart(out: Path = typer.Option(Path("runs/quickstart"), help="Run folder."),
               quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of progress bars.")) -> None:
    """The whole workflow on built-in data, offline: check, fine-tune, evaluate, predict, report."""
    from pixelforge.api.quickstart import run_quickstart

    _setup_logging()  # as in `train`: --quiet turns progress bars into log lines
    run_quickstart(out, quiet=quiet)


# Commands of later stages (data, deployment, explanation) are registered below, one line each.
from pixelforge.data_commands import data_check, data_convert, data_make, data_preview  # noqa: E402
data_app.command("check")(data_check)
data_app.command("preview")(data_preview)
data_app.command("make")(data_make)
data_app.command("convert")(data_convert)
from pixelforge.commands.drift import drift_command as _drift; data_app.command("drift")(_drift)  # noqa: E402,E702
from pixelforge.deploy.commands import export_command as _export_command; app.command("export")(_export_command)  # noqa: E402,E702
from pixelforge.deploy.commands import serve_command as _serve_command; app.command("serve")(_serve_command)  # noqa: E402,E702
from pixelforge.deploy.commands import video_command as _video_command; app.command("video")(_video_command)  # noqa: E402,E702
from pixelforge.explain.commands import explain as _explain_command; app.command("explain")(_explain_command)  # noqa: E402,E702
from pixelforge.commands.generate import generate_command as _generate_command; app.command("generate")(_generate_command)  # noqa: E402,E702
from pixelforge.commands.tune import tune as _tune_command; app.command("tune")(_tune_command)  # noqa: E402,E702
from pixelforge.commands.nas import nas as _nas_command; app.command("nas")(_nas_command)  # noqa: E402,E702
from pixelforge.commands.runs import runs_app as _runs_app; app.add_typer(_runs_app, name="runs")  # noqa: E402,E702
from pixelforge.commands.stylize import stylize_command as _stylize; app.command("stylize")(_stylize)  # noqa: E402,E702
from pixelforge.commands.compress import compress_command as _compress; app.command("compress")(_compress)  # noqa: E402,E702
from pixelforge.commands.compress import decompress_command as _decompress; app.command("decompress")(_decompress)  # noqa: E402,E702
from pixelforge.commands.fewshot import fewshot_command as _fewshot; app.command("fewshot")(_fewshot)  # noqa: E402,E702
from pixelforge.commands.zeroshot import zeroshot_command as _zeroshot; app.command("zeroshot")(_zeroshot)  # noqa: E402,E702


# A closed pipe ends the command as SIGPIPE ends other Unix tools: quietly, with the shell's code for it (141);
# a training run saves its checkpoint first and says so on stderr when stderr is still open.
CLOSED_PIPE_EXIT = 128 + 13


# What lowers the memory each command needs, for its out-of-memory line (training's comes from the engine, which
# knows the batch size, image size and precision in use: engine/fit.py).
MEMORY_OPTIONS = {
    "predict": "use --precision int8 or fp16 with a package, or predict smaller images",
    "video": "use --precision int8 or fp16, or a video of fewer pixels",
    "serve": "lower --max-batch or --max-pixels, or use --precision int8 or fp16",
    "stylize": "lower --size (the content's longer side in px) or --scales",
    "export": "lower --calibration-images or --parity-images",
    "generate": "lower --n",
    "fewshot": "lower --img-size or --shots",
    "evaluate": "score fewer images with --data, or free the GPU memory other programs hold",
}


def _out_of_resources_line(exc: BaseException, argv: list[str]) -> str | None:
    """One line for memory run out (or a DataLoader worker lost) outside training's engine: the command, what ran
    out, the options given that size the work and the ones that lower it. None for anything else (a bug)."""
    from pixelforge.errors import is_out_of_memory, is_worker_failure, memory_that_ran_out, worker_failure_line

    command = next((arg for arg in argv if not arg.startswith("-")), "")
    if is_worker_failure(exc):
        return worker_failure_line(exc)
    if not is_out_of_memory(exc):
        return None
    sizing = ("--batch-size", "--img-size", "--size", "--precision", "--max-batch", "--max-pixels", "--n", "--shots",
              "--scales", "--calibration-images")
    given = [f"{flag} {argv[i + 1]}" for i, flag in enumerate(argv[:-1]) if flag in sizing]
    in_use = f" ({', '.join(given)})" if given else ""
    advice = MEMORY_OPTIONS.get(command, "free the memory other programs hold, or give it smaller inputs")
    return f"out of {memory_that_ran_out(exc)} in `pixelforge {command}`{in_use}: {advice}"


def main() -> None:
    try:
        # Outside standalone mode click returns typer.Exit's code instead of exiting: pass it on.
        code = app(standalone_mode=False)
        sys.stdout.flush()  # a closed pipe found here, not as "Exception ignored" at exit
        if isinstance(code, int) and code:
            sys.exit(code)
    except (_ClosedPipe, BrokenPipeError):
        _stop_writing_to_closed_pipes()
        sys.exit(CLOSED_PIPE_EXIT)
    except Interrupted as exc:  # not a mistake: the shell's code for the signal (errors.py)
        _say_error(str(exc))
        sys.exit(exc.exit_code)
    except PixelforgeError as exc:
        _say_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt as exc:
        typer.secho("interrupted", err=True, fg="red")
        sys.exit(128 + signal_of(exc))
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except Exception as exc:
        line = os_error_line(exc) if isinstance(exc, OSError) else None  # a read-only or full disk, a locked folder
        line = line or _out_of_resources_line(exc, sys.argv[1:])
        if line is not None:
            _say_error(line)
            sys.exit(2)
        # Usage errors from click (which Typer vendors): print click's own message, exit with its code (2).
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _say_error(line: str) -> None:
    """`error: LINE` on stderr, unless stderr is a closed pipe (then nobody reads it, and exit codes speak)."""
    try:
        typer.secho(f"error: {line}", err=True, fg="red")
    except BrokenPipeError:
        pass
    _stop_writing_to_closed_pipes()


def _stop_writing_to_closed_pipes() -> None:
    """Point a closed stdout or stderr at /dev/null, so what is left in its buffer is not written at exit, where
    Python would print "Exception ignored ... BrokenPipeError" (the recipe of Python's `signal` documentation)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
            except (OSError, ValueError):  # not a real file descriptor (a test's captured stream)
                pass


if __name__ == "__main__":  # `python -m pixelforge.cli ...`, e.g. under torchrun
    main()
