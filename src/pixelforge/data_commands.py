"""`pixelforge data check|preview|make|convert`: the dataset commands, for every task.

Each command asks the task registry for `--task`'s reader (class folders, boxes or masks) and prints one screen;
the work is done by the data layer (`data/check.py`, `data/boxes/`, `data/masks/`) and the previews by `viz/`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError

TASK_HELP = "classify | detect | segment | instance (default classify)."


def _checked_tasks() -> str:
    from pixelforge.tasks.base import Task
    from pixelforge.tasks.registry import TASKS

    names = [n for n, cls in sorted(TASKS.items()) if cls.reads_photo_folder or cls.check_dataset is not Task.check_dataset]
    return " | ".join(names) + " (default classify)."


def data_check(path: str = typer.Argument(..., help="Folder, CSV, COCO json, YOLO data.yaml, or built-in name."),
               task: str = typer.Option("classify", help=_checked_tasks()),
               ignore_index: int = typer.Option(255, help="segment: mask value that marks ignored pixels."),
               num_classes: Optional[int] = typer.Option(None, help="segment: declared number of classes."),
               img_size: Optional[int] = typer.Option(None, help="The size you will train at (default the task's): "
                                                                  "images far smaller than it are listed."),
               strict: bool = typer.Option(False, "--strict", help="Exit 1 on any problem listed, duplicates and "
                                                                  "other warnings included (without it: only on "
                                                                  "problems that stop training or leave data out)."),
               as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """One-screen dataset report: counts, imbalance, corrupt files, duplicates and leakage, sizes, and per task
    box problems (detect) or mask problems (segment), each listed with its file. Exits 1 when a problem would stop
    training or leave data out (with --strict: on any problem), 0 otherwise."""
    from pixelforge.tasks.registry import get_task

    chosen = get_task(task)
    img_size = img_size or chosen.defaults.get("img_size") or chosen.config_class.model_fields["img_size"].default
    report = chosen.check_dataset(path, ignore_index=ignore_index, num_classes=num_classes, img_size=img_size)
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        chosen.print_check(report)
    # A plugin task's report may count only problems: then every one of them is an error.
    errors = report.problem_count if strict else getattr(report, "error_count", report.problem_count)
    if errors:
        raise typer.Exit(1)


def data_preview(path: str = typer.Argument(..., help="Folder, CSV, COCO json, YOLO data.yaml, or built-in name."),
                 task: str = typer.Option("classify", help=TASK_HELP),
                 out: Optional[Path] = typer.Option(None, help="PNG to write (default preview.png, or preview-2.png... "
                                                    "when it exists); never overwritten."),
                 augment: str = typer.Option("light", help="none | light | standard | strong."),
                 img_size: int = typer.Option(224, help="Input size in pixels."),
                 count: int = typer.Option(24, help="How many samples.")) -> None:
    """Save a grid of augmented training samples with their labels, boxes or mask overlays: what the model sees."""
    from pixelforge.runs.folder import output_path
    from pixelforge.tasks.registry import get_task

    out = output_path(out, "preview.png")
    typer.echo(f"preview: {get_task(task).write_preview(path, out, augment, img_size, count)}")


def data_make(name: str = typer.Argument(..., help="digits | shapes | split-digits"),
              out: Path = typer.Option(..., help="Folder to write (must not exist or be empty)."),
              task: str = typer.Option("classify", help="classify | detect | segment | instance (shapes has all four)."),
              seed: int = typer.Option(0, help="Generator seed."),
              tasks: int = typer.Option(5, help="split-digits: how many tasks (class-incremental: 10 classes shared "
                                                "out in order).")) -> None:
    """Write a built-in dataset to disk: class folders (classify), images + COCO json (detect, instance), or images
    + index-mask PNGs (segment), with train/val/test splits."""
    from pixelforge.data.builtin import BUILTIN_DATASETS, materialize
    from pixelforge.tasks.registry import get_task

    kind = get_task(task).data_kind
    if name == "split-digits":  # continual learning's benchmark: a folder a task (data/split_digits.py)
        from pixelforge.data.split_digits import write_split_digits

        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PixelforgeError(f"{out}: exists and is a file or not empty; choose a new --out")
        typer.echo("wrote " + "  ".join(str(p) for p in write_split_digits(out, tasks, seed)))
        return
    if name not in BUILTIN_DATASETS:
        raise PixelforgeError(f"unknown built-in dataset {name!r}; choose one of {', '.join(sorted(BUILTIN_DATASETS))}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: exists and is a file or not empty; choose a new --out")
    typer.echo(f"wrote {materialize(name, out, seed, kind=kind)}")


def data_convert(source: str = typer.Argument(..., help="Detection data: COCO json/folder, YOLO data.yaml/folder, VOC folder."),
                 to: str = typer.Option(..., help="coco | yolo | voc."),
                 out: Path = typer.Option(..., help="Folder to write (must not exist or be empty).")) -> None:
    """Convert box annotations between COCO JSON, YOLO txt and Pascal VOC XML (images are copied alongside)."""
    from pixelforge.data.boxes.convert import convert_boxes

    if to not in ("coco", "yolo", "voc"):
        raise PixelforgeError(f"--to {to!r}: choose coco, yolo or voc")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PixelforgeError(f"{out}: exists and is a file or not empty; choose a new --out")
    written = convert_boxes(source, out, to=to, report=lambda line: typer.echo(f"note: {line}", err=True))
    typer.echo(f"wrote {written}")
