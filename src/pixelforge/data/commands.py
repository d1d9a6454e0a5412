"""`pixelforge data check|preview|make|convert`: the dataset commands, for every task.

Each command picks the reader for `--task` (class folders, boxes or masks) and prints one screen; the work is done
by the task's own module (`data/check.py`, `data/boxes/`, `data/masks/`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError

TASKS = ("classify", "detect", "segment", "instance")
TASK_HELP = "classify | detect | segment | instance (default classify)."


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise PixelforgeError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    return task


def data_check(path: str = typer.Argument(..., help="Folder, CSV, COCO json, YOLO data.yaml, or built-in name."),
               task: str = typer.Option("classify", help=TASK_HELP),
               ignore_index: int = typer.Option(255, help="segment: mask value that marks ignored pixels."),
               num_classes: Optional[int] = typer.Option(None, help="segment: declared number of classes."),
               strict: bool = typer.Option(False, "--strict", help="Exit 1 when any problem is found."),
               as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """One-screen dataset report: counts, imbalance, corrupt files, duplicates and leakage, sizes, and per task
    box problems (detect) or mask problems (segment), each listed with its file."""
    task = _check_task(task)
    if task in ("detect", "instance"):
        from pixelforge.data.boxes.check import check_boxes as check, print_box_report as show

        report = check(_builtin(path, task))
    elif task == "segment":
        from pixelforge.data.masks.check import check_masks, print_mask_report as show

        report = check_masks(_builtin(path, task), ignore_index=ignore_index, num_classes=num_classes)
    else:
        from pixelforge.data.check import check_dataset, print_report as show

        report = check_dataset(path)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        show(report)
    if strict and report.problem_count:
        raise typer.Exit(1)


def data_preview(path: str = typer.Argument(..., help="Folder, CSV, COCO json, YOLO data.yaml, or built-in name."),
                 task: str = typer.Option("classify", help=TASK_HELP),
                 out: Path = typer.Option(Path("preview.png"), help="PNG to write."),
                 augment: str = typer.Option("light", help="none | light | standard | strong."),
                 img_size: int = typer.Option(224, help="Input size in pixels."),
                 count: int = typer.Option(24, help="How many samples.")) -> None:
    """Save a grid of augmented training samples with their labels, boxes or mask overlays: what the model sees."""
    task = _check_task(task)
    if task in ("detect", "instance"):
        from pixelforge.data.boxes.preview import write_box_preview as write
    elif task == "segment":
        from pixelforge.data.masks.preview import write_mask_preview as write
    else:
        from pixelforge.data.preview import write_preview as write
    source = _builtin(path, task) if task != "classify" else path
    typer.echo(f"preview: {write(source, out, augment, img_size, count)}")


def data_make(name: str = typer.Argument(..., help="digits | shapes"),
              out: Path = typer.Option(..., help="Folder to write (must not exist or be empty)."),
              task: str = typer.Option("classify", help="classify | detect | segment | instance (shapes has all four)."),
              seed: int = typer.Option(0, help="Generator seed.")) -> None:
    """Write a built-in dataset to disk: class folders (classify), images + COCO json (detect, instance), or images
    + index-mask PNGs (segment), with train/val/test splits."""
    from pixelforge.data.builtin import BUILTIN_DATASETS, materialize

    task = _check_task(task)
    if name not in BUILTIN_DATASETS:
        raise PixelforgeError(f"unknown built-in dataset {name!r}; choose one of {', '.join(sorted(BUILTIN_DATASETS))}")
    if out.exists() and any(out.iterdir()):
        raise PixelforgeError(f"{out}: folder exists and is not empty; choose a new --out")
    typer.echo(f"wrote {materialize(name, out, seed, task=task)}")


def data_convert(source: str = typer.Argument(..., help="Detection data: COCO json/folder, YOLO data.yaml/folder, VOC folder."),
                 to: str = typer.Option(..., help="coco | yolo | voc."),
                 out: Path = typer.Option(..., help="Folder to write (must not exist or be empty).")) -> None:
    """Convert box annotations between COCO JSON, YOLO txt and Pascal VOC XML (images are copied alongside)."""
    from pixelforge.data.boxes.convert import convert_boxes

    if to not in ("coco", "yolo", "voc"):
        raise PixelforgeError(f"--to {to!r}: choose coco, yolo or voc")
    if out.exists() and any(out.iterdir()):
        raise PixelforgeError(f"{out}: folder exists and is not empty; choose a new --out")
    typer.echo(f"wrote {convert_boxes(source, out, to=to)}")


def _builtin(path: str, task: str) -> str:
    """A built-in name (e.g. `shapes`) becomes its folder for `task`; anything else is a path."""
    from pixelforge.data.builtin import BUILTIN_DATASETS, materialize

    if path in BUILTIN_DATASETS and not Path(path).exists():
        return str(materialize(path, task=task))
    return path
