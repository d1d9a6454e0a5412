"""`pixelforge.evaluate`: score a run with its task's own metrics and write the figures that explain the score."""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.runs.files import run_task_name
from pixelforge.tasks.registry import get_task


def evaluate(run_dir: str | Path, data: str | None = None, split: str | None = None, out: str | Path | None = None,
             **options):
    """Evaluate the run's best checkpoint; figures go to `out` (default RUN/eval-<split>, or RUN/eval-<split>-2...
    when that holds an evaluation of other data or options).

    Which images: the run's own held-out split by default; with `data`, its test split (else val; all images
    when it has no splits), or the named `split`. With `data`, the run's own training images are left out of the
    score and counted in `excluded_training_images` unless `include_train` is true (classify, detect, segment,
    instance, denoise, compress, caption, clip: tasks/common/held_out.py). Task options: classify takes `groups`
    and `compare` (per-group metrics and a before/after table, see docs/fairness.md).

    Returns an `EvalResult` (runs/result.py): `metrics` (the task's own names: accuracy, map50, miou, psnr, ...),
    `out_dir`, `figures`, `unreadable`, `task`; `to_json()` is what `pixelforge evaluate --json` prints.

    Example:
        >>> evaluate("runs/digits", data="digits").metrics["accuracy"]  # doctest: +SKIP
        0.99
    """
    if out is not None and Path(out).exists() and not Path(out).is_dir():  # else a FileExistsError deep in a task
        raise PixelforgeError(f"{out}: a file, not a folder; --out names the folder for metrics.json and the figures")
    task = get_task(run_task_name(run_dir))
    result = task.evaluate(Path(run_dir), data=data, split=split, out=Path(out) if out else None, **options)
    result.task = result.task or task.name  # `evaluate --json`'s "task", as every task's answer has it
    task.refresh_card(Path(run_dir))  # the card reports the run's own evaluations: now with these figures
    return result
