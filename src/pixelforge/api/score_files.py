"""`pixelforge evaluate --task ... --gt ... --predictions ...`: score predictions made elsewhere.

For users who bring their own model's output: a COCO-results JSON against COCO ground truth (detection; instance
segmentation with RLE or polygon masks), or a folder of predicted index-mask PNGs against a folder of truth masks,
matched by file name (segmentation). The metrics and keys are the same as for a pixelforge run.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.registry import get_task


def score_files(task: str | None, gt: Path | None, predictions: Path | None, **options) -> dict:
    if gt is None or predictions is None:
        raise PixelforgeError("evaluate: --gt and --predictions go together; give both")
    if task is None:
        raise PixelforgeError("evaluate --gt/--predictions: give --task (the kind of predictions to score)")
    return get_task(task).score_files(Path(gt), Path(predictions), **options)
