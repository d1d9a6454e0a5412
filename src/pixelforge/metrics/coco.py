"""COCO box metrics, computed by pycocotools' COCOeval, the reference implementation, from in-memory dicts.

Matching detections to ground truth (greedy by score, crowd regions as ignore, per-size ranges, 101-point
interpolated precision) has subtle rules; reimplementing it invites numbers that differ from published ones, so
this module only feeds COCOeval and names its outputs:

    map, map50, map75                  AP averaged over IoU 0.50:0.95, at 0.50, at 0.75 (maxDets 100)
    map_small, map_medium, map_large   AP by object area (< 32², 32²-96², > 96² pixels of the original image)
    mar_1, mar_10, mar_100             recall given at most 1, 10, 100 detections per image
    mar_small, mar_medium, mar_large   recall by object area
    per_class, per_class_ap50          {class name: AP}, None for a class with no ground truth
    pr_curve                           recall thresholds and, per class, precision at IoU 0.50 (for plots)

As in pycocotools, an area range without any ground truth scores -1 ("undefined"), not 0.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import logging

import numpy as np

from pixelforge.errors import PixelforgeError

log = logging.getLogger(__name__)

STAT_KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
             "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


def as_coco(dataset: dict):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints "creating index..."
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def complete_ground_truth(gt: dict) -> dict:
    """A copy of COCO `gt` with the optional fields COCOeval reads filled in: annotation ids, area, iscrowd."""
    gt = copy.deepcopy(gt)
    gt.setdefault("info", {})
    for index, ann in enumerate(gt.get("annotations", [])):
        ann.setdefault("id", index + 1)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
    return gt


def coco_metrics(gt: dict, results: list[dict], categories: dict[int, str] | None = None) -> dict:
    """Score COCO `results` ([{image_id, category_id, bbox [x, y, w, h], score}]) against ground truth `gt`.

    Args:
        gt: a COCO dict (images, annotations, categories), as in an annotations JSON file.
        results: detections in the COCO results format; may be empty (every metric is then 0).
        categories: names by category id; default: gt's categories.

    Example:
        >>> gt = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25,
        ...                        "iscrowd": 0}]}
        >>> coco_metrics(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}])["map50"]
        1.0
    """
    from pycocotools.cocoeval import COCOeval

    gt = complete_ground_truth(gt)
    names = categories or {int(c["id"]): str(c.get("name", c["id"])) for c in gt["categories"]}
    coco_gt = as_coco(gt)
    if not results or not gt.get("annotations"):
        return empty_metrics(names, bool(gt.get("annotations")), len(gt["images"]), len(results))
    with contextlib.redirect_stdout(io.StringIO()):  # loadRes, evaluate and summarize all print progress
        coco_dt = coco_gt.loadRes([dict(r) for r in results])  # loadRes adds ids and areas: copy the caller's dicts
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = named_stats(evaluator, names)
    metrics["num_images"], metrics["num_detections"] = len(gt["images"]), len(results)
    return metrics


def named_stats(evaluator, names: dict[int, str]) -> dict:
    """A run COCOeval's summary under our key names, with per-class AP and the IoU 0.50 precision-recall curves
    (for boxes and masks alike)."""
    metrics = {key: float(value) for key, value in zip(STAT_KEYS, evaluator.stats)}
    # precision[T IoUs, R recall thresholds, K categories, A area ranges, M maxDets]; area "all" = 0, maxDets 100 = -1
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    metrics["per_class"], metrics["per_class_ap50"], curves = {}, {}, {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        name = names.get(cat_id, str(cat_id))
        metrics["per_class"][name] = _mean_valid(precision[:, :, k])
        metrics["per_class_ap50"][name] = _mean_valid(precision[0, :, k])
        if (precision[0, :, k] > -1).any():
            curves[name] = [round(float(v), 6) for v in precision[0, :, k]]
    metrics["pr_curve"] = {"recall": [round(float(r), 4) for r in evaluator.params.recThrs], "precision50": curves}
    return metrics


def _mean_valid(values: np.ndarray) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def empty_metrics(names: dict[int, str], has_gt: bool, num_images: int, num_detections: int) -> dict:
    """No detections (or no ground truth): what COCOeval would give, without its IndexError on empty results."""
    value = 0.0 if has_gt else -1.0
    metrics = {key: value for key in STAT_KEYS}
    metrics["per_class"] = {name: (0.0 if has_gt else None) for name in names.values()}
    metrics["per_class_ap50"] = dict(metrics["per_class"])
    metrics["pr_curve"] = {"recall": [round(float(r), 4) for r in np.linspace(0, 1, 101)], "precision50": {}}
    metrics["num_images"], metrics["num_detections"] = num_images, num_detections
    return metrics


def _shown(value) -> str:
    """-1 is COCOeval's "no ground truth": printed as a dash, since -1.000 reads as a score."""
    return "\u2014" if value is None or not value >= 0 else f"{value:.3f}"


def plot_pr_curves(metrics: dict, path: Path, title: str = "precision-recall at IoU 0.50") -> Path:
    """One precision-recall curve per class (IoU 0.50, COCO's interpolated precision) with its AP50 in the legend."""
    from pixelforge.viz.plots import plt

    curve = metrics["pr_curve"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for name, precision in curve["precision50"].items():
        ap50 = metrics["per_class_ap50"].get(name)
        ax.plot(curve["recall"], np.clip(precision, 0, 1), label=f"{name} (AP50 {ap50:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}\nmAP50 {_shown(metrics['map50'])}, mAP@[.5:.95] {_shown(metrics['map'])} "
                 "(higher is better)", fontsize=10)
    if curve["precision50"]:
        ax.legend(fontsize=8, loc="lower left")
    else:  # an empty frame would read as a figure that failed to draw
        found = metrics.get("num_detections")
        why = ("no ground-truth objects: precision-recall is undefined" if metrics["map50"] is None or metrics["map50"] < 0
               else f"no detections{f' ({found})' if found is not None else ''}: no curve to draw")
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="gray", wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def check_result_categories(gt: dict, results: list[dict], gt_name, results_name) -> None:
    """Refuse results none of whose category ids the ground truth lists; warn about some that it does not.

    COCOeval matches results to truth by category id, so ids from another numbering (0-based class indices against
    1-based COCO ids, say) score 0 without a word. A few unknown ids are what pycocotools ignores (a detector of
    more classes scored on a subset): those are scored the same way, with a warning.
    """
    known = {c.get("id") for c in gt.get("categories", []) if isinstance(c, dict)}
    unknown = [i for i, r in enumerate(results) if r["category_id"] not in known]
    if unknown and len(unknown) == len(results):
        first = results[unknown[0]]["category_id"]
        raise PixelforgeError(f"{results_name}: no result has a category_id that {gt_name} lists (result "
                              f"{unknown[0]} has {first}; its ids: {sorted(known, key=str)}); map the predictions' "
                              "class ids to the ground truth's category ids")
    if unknown:
        ids = sorted({results[i]["category_id"] for i in unknown}, key=str)
        log.warning("%s: %d of %d results have category ids %s that %s does not list; they are left out, as "
                    "pycocotools does", results_name, len(unknown), len(results), ids, gt_name)
