"""`pixelforge.predict`: run a trained run folder over image files, folders or glob patterns."""

from __future__ import annotations

from pathlib import Path

from pixelforge.data.sources import collect_paths
from pixelforge.runs.files import run_task_name
from pixelforge.runs.folder import new_file_path
from pixelforge.tasks.registry import get_task


def predict(run_dir: str | Path, paths: list, out: str | Path | None = None, **options) -> list[dict]:
    """One result dict per image. Task options: classify `top_k`; detect/instance `score_threshold`, `nms_iou`;
    box, mask and image tasks write their pictures and results into `out` (default RUN/predictions, or
    RUN/predictions-2... after an earlier call: never overwritten).

    Example:
        >>> predict("runs/digits", ["digits/test/7"], top_k=3)[0]["label"]  # doctest: +SKIP
        '7'
    """
    collect_paths(list(paths))  # a mistyped image path is named before the run is loaded
    run = Path(run_dir)
    task = get_task(run_task_name(run))
    return task.predict(run, list(paths), out=Path(out) if out else new_file_path(run / "predictions"), **options)
