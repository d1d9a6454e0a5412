"""The `pixelforge` command line: a thin Typer layer over the Python API (`pixelforge.train/evaluate/predict`).

User mistakes surface as `PixelforgeError`; `main` prints its one line and exits with code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="pixelforge: the deep-learning image workflow, from a folder of photos to a deployed model.")
data_app = typer.Typer(no_args_is_help=True, help="Check, preview and generate datasets.")
app.add_typer(data_app, name="data")


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if not quiet else logging.WARNING, format="%(message)s", stream=sys.stderr)


TRAIN_HELP = {
    "data": "Folder of class subfolders (optionally inside train/val/test), a CSV path,label[,split][,group], or digits|shapes.",
    "model": "Backbone name (see `pixelforge models`); default tf_efficientnet_lite0.",
    "weights": "imagenet | none | PATH to .safetensors/.pth.",
    "strategy": "linear (frozen backbone) | full | gradual (unfreeze stage by stage).",
}


@app.command()
def train(
    data: Optional[str] = typer.Option(None, help=TRAIN_HELP["data"]),
    config: Optional[Path] = typer.Option(None, help="YAML file with any of these options; the command line wins."),
    model: Optional[str] = typer.Option(None, help=TRAIN_HELP["model"]),
    weights: Optional[str] = typer.Option(None, help=TRAIN_HELP["weights"]),
    strategy: Optional[str] = typer.Option(None, help=TRAIN_HELP["strategy"]),
    out: Optional[str] = typer.Option(None, help="Run folder (a suffix is added if it exists)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default 10)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size per device (default 32)."),
    img_size: Optional[int] = typer.Option(None, help="Input size in pixels (default 224)."),
    augment: Optional[str] = typer.Option(None, help="none | light | standard | strong (default light)."),
    optimizer: Optional[str] = typer.Option(None, help="adamw | sgd."),
    lr: Optional[str] = typer.Option(None, help="Learning rate, or 'auto' for a range test first (default 1e-3)."),
    backbone_lr_mult: Optional[float] = typer.Option(None, help="Backbone lr = lr * this (default 0.1)."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay (default 0.01)."),
    schedule: Optional[str] = typer.Option(None, help="cosine | onecycle | constant."),
    warmup_epochs: Optional[float] = typer.Option(None, help="Linear warmup length in epochs (default 0.5)."),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing (default 0.1)."),
    dropout: Optional[float] = typer.Option(None, help="Dropout before the head (default 0.2)."),
    grad_clip: Optional[float] = typer.Option(None, help="Clip gradient norm to this value."),
    early_stopping: Optional[int] = typer.Option(None, help="Stop after N epochs without val improvement."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    val_fraction: Optional[float] = typer.Option(None, help="Validation share when the data has no splits (0.2)."),
    test_fraction: Optional[float] = typer.Option(None, help="Test share when the data has no splits (0)."),
    devices: Optional[int] = typer.Option(None, help="Processes/devices; >1 runs DDP (gloo on CPU)."),
    num_nodes: Optional[int] = typer.Option(None, help="Machines, each started by torchrun (see README)."),
    accelerator: Optional[str] = typer.Option(None, help="auto | cpu | cuda | mps."),
    precision: Optional[str] = typer.Option(None, help="32 | bf16-mixed | 16-mixed."),
    workers: Optional[int] = typer.Option(None, help="DataLoader workers (default from the core count)."),
    cache_features: Optional[bool] = typer.Option(None, "--cache-features/--no-cache-features",
                                                  help="linear: train the head on cached backbone features."),
    balance: Optional[str] = typer.Option(None, help="none | classes | groups: re-weighted sampling (default none)."),
    groups: Optional[str] = typer.Option(None, help="Group of each image: a CSV column (default group) or a folder,group .csv."),
    resume: Optional[Path] = typer.Option(None, help="Continue an interrupted run folder where it stopped."),
    quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of progress bars."),
) -> None:
    """Fine-tune a pretrained CNN (or train from scratch) and write a run folder with a report."""
    from pixelforge.engine.train import train as run_train

    _setup_logging(quiet)
    if lr is not None and lr != "auto":
        try:
            lr = float(lr)
        except ValueError:
            raise PixelforgeError(f"--lr {lr!r}: give a number such as 1e-3, or auto") from None
    options = {k: v for k, v in locals().items()
               if k not in ("data", "config", "resume", "run_train") and v is not None}
    options["quiet"] = quiet or None
    result = run_train(data, config=config, resume=resume, **options)
    typer.echo(f"run folder: {result.run_dir}  best val accuracy: {result.best_val_accuracy:.4f}  "
               f"report: {result.run_dir / 'report.html'}")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder written by `pixelforge train`."),
    data: Optional[str] = typer.Option(None, help="Data to score (default: the run's own validation split)."),
    split: Optional[str] = typer.Option(None, help="train | val | test (default: test, else val, else all)."),
    out: Optional[Path] = typer.Option(None, help="Folder for figures (default RUN/eval-SPLIT)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with all metrics to stdout."),
    groups: Optional[str] = typer.Option(None, help="Per-group metrics by this CSV column, or a folder,group mapping .csv."),
    compare: Optional[Path] = typer.Option(None, help="Baseline run: add a before/after table of the group metrics."),
) -> None:
    """Accuracy, top-5, per-class precision/recall/F1, calibration, confusion matrix and worst mistakes."""
    from pixelforge.evaluation.evaluate import evaluate as run_evaluate

    _setup_logging(as_json)
    result = run_evaluate(run, data=data, split=split, out=out, groups=groups, compare=compare)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    m = result.metrics
    typer.echo(f"{m['split']}: {m['num_images']} images  accuracy {m['accuracy']:.4f}  macro F1 {m['macro_f1']:.4f}  "
               f"ECE {m['ece']:.4f}" + (f"  top-5 {m['top5_accuracy']:.4f}" if m["top5_accuracy"] is not None else ""))
    for name, row in m["per_class"].items():
        typer.echo(f"  {name:20s} precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
                   f"F1 {row['f1']:.3f}  support {row['support']}")
    if "groups" in m:
        from pixelforge.evaluation.fairness import format_groups

        typer.echo(format_groups(m["groups"]))
    typer.echo(f"figures: {result.out_dir}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder, or a package folder from `pixelforge export` (runs without torch)."),
    paths: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    top_k: int = typer.Option(1, "--top-k", min=1, help="How many labels per image."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list to stdout."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Write path,label,score rows to this CSV file."),
) -> None:
    """Label images with a trained run, or with an exported package (ONNX Runtime, no torch)."""
    if (run / "preprocess.json").is_file():  # an exported package: ONNX Runtime, no torch import
        from pixelforge.deploy.commands import predict_package as run_predict
    else:
        from pixelforge.evaluation.predict import predict as run_predict

    _setup_logging(True)
    results = run_predict(run, paths, top_k=top_k)
    if csv_file:
        import csv

        with open(csv_file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "score"])
            writer.writerows([r["path"], r["label"], r["score"]] for r in results)
    if as_json:
        typer.echo(json.dumps(results))
    elif not csv_file:
        for r in results:
            ranked = "  ".join(f"{t['label']} {t['score']:.3f}" for t in r.get("top_k", [])) or r.get("error")
            typer.echo(f"{r['path']}: {ranked}")


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
    data: str = typer.Option(..., help=TRAIN_HELP["data"]),
    model: Optional[str] = typer.Option(None, help=TRAIN_HELP["model"]),
    weights: Optional[str] = typer.Option(None, help=TRAIN_HELP["weights"]),
    strategy: Optional[str] = typer.Option(None, help=TRAIN_HELP["strategy"]),
    img_size: Optional[int] = typer.Option(None, help="Input size in pixels."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    out: Path = typer.Option(Path("lr_find.png"), help="Where to write the plot."),
) -> None:
    """Run a learning-rate range test (fastai's lr_find) and plot loss against learning rate."""
    from pixelforge.engine.lr_find import find_lr_for_config

    _setup_logging()
    result = find_lr_for_config(out, data=data, model=model, weights=weights, strategy=strategy,
                                img_size=img_size, batch_size=batch_size)
    typer.echo(f"suggested learning rate: {result.suggestion:.2e}  plot: {result.plot}")


@app.command()
def quickstart(out: Path = typer.Option(Path("runs/quickstart"), help="Run folder."),
               quiet: bool = typer.Option(False, "--quiet", help="Log lines instead of progress bars.")) -> None:
    """The whole workflow on built-in data, offline: check, fine-tune, evaluate, predict, report."""
    from pixelforge.engine.quickstart import run_quickstart

    _setup_logging(quiet)
    run_quickstart(out, quiet=quiet)


@data_app.command("check")
def data_check(path: str = typer.Argument(..., help="Folder, CSV or built-in name."),
               strict: bool = typer.Option(False, "--strict", help="Exit 1 when any problem is found."),
               as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """One-screen dataset report: counts, imbalance, corrupt files, duplicates and leakage, sizes, modes, EXIF."""
    from pixelforge.data.check import check_dataset, print_report

    report = check_dataset(path)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        print_report(report)
    if strict and report.problem_count:
        raise typer.Exit(1)


@data_app.command("preview")
def data_preview(path: str = typer.Argument(..., help="Folder, CSV or built-in name."),
                 out: Path = typer.Option(Path("preview.png"), help="PNG to write."),
                 augment: str = typer.Option("light", help="none | light | standard | strong."),
                 img_size: int = typer.Option(224, help="Input size in pixels."),
                 count: int = typer.Option(24, help="How many samples.")) -> None:
    """Save a grid of augmented training samples with their labels: what the model will see."""
    from pixelforge.data.preview import write_preview

    typer.echo(f"preview: {write_preview(path, out, augment, img_size, count)}")


@data_app.command("make")
def data_make(name: str = typer.Argument(..., help="digits | shapes"),
              out: Path = typer.Option(..., help="Folder to write (must not exist or be empty)."),
              seed: int = typer.Option(0, help="Generator seed.")) -> None:
    """Write a built-in dataset to disk as train/val/test class folders."""
    from pixelforge.data.builtin import BUILTIN_DATASETS, materialize

    if name not in BUILTIN_DATASETS:
        raise PixelforgeError(f"unknown built-in dataset {name!r}; choose one of {', '.join(sorted(BUILTIN_DATASETS))}")
    if out.exists() and any(out.iterdir()):
        raise PixelforgeError(f"{out}: folder exists and is not empty; choose a new --out")
    typer.echo(f"wrote {materialize(name, out, seed)}")


# Commands of later stages (deployment, explanation) are registered below, one line each.
from pixelforge.deploy.commands import export_command as _export_command; app.command("export")(_export_command)  # noqa: E402,E702
from pixelforge.deploy.commands import serve_command as _serve_command; app.command("serve")(_serve_command)  # noqa: E402,E702
from pixelforge.deploy.commands import video_command as _video_command; app.command("video")(_video_command)  # noqa: E402,E702
from pixelforge.explain.commands import explain as _explain_command; app.command("explain")(_explain_command)  # noqa: E402,E702


def main() -> None:
    try:
        # Outside standalone mode click returns typer.Exit's code instead of exiting: pass it on.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except PixelforgeError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True, fg="red")
        sys.exit(130)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code)
    except Exception as exc:
        # Usage errors from click (which Typer vendors): print click's own message, exit with its code (2).
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":  # `python -m pixelforge.cli ...`, e.g. under torchrun
    main()
