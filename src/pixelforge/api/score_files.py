"""`pixelforge evaluate --task ... --gt ... --predictions ...`: score predictions made elsewhere.

For users who bring their own model's output: a COCO-results JSON against COCO ground truth (detection; instance
segmentation with RLE or polygon masks), or a
folder of predicted index-mask PNGs against a folder of truth masks, matched by file name (segmentation). The
metrics and keys are the same as for a pixelforge run.
"""

from __future__ import annotations

from pathlib import Path

from pixelforge.errors import PixelforgeError


def score_files(task: str | None, gt: Path | None, predictions: Path | None, num_classes: int | None = None,
                ignore_index: int | None = None) -> dict:
    if gt is None or predictions is None:
        raise PixelforgeError("evaluate: --gt and --predictions go together; give both")
    if task == "detect":
        from pixelforge.tasks.detect.evaluate import score_coco_files

        return score_coco_files(gt, predictions)
    if task == "instance":
        from pixelforge.tasks.instance.evaluate import score_instance_files

        return score_instance_files(gt, predictions)
    if task == "segment":
        if num_classes is None:
            raise PixelforgeError("evaluate --task segment: --num-classes K is required with --gt/--predictions")
        from pixelforge.tasks.segment.evaluate import score_mask_folders

        return score_mask_folders(gt, predictions, num_classes, ignore_index)
    raise PixelforgeError(f"evaluate --gt/--predictions: --task must be detect, segment or instance (got {task!r})")
