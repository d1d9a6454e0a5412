"""Scoring and running a trained instance-segmentation run: COCO mask AP, evaluate on a split, predict masks.

Mask AP is pycocotools' COCOeval with `iouType="segm"`, the reference implementation, fed from memory (see
`metrics/coco.py` for why we never re-implement the matching). Two conventions follow the published
evaluations (detectron2's COCOEvaluator):
    - predicted masks are the model's mask probabilities resized to the original image and thresholded at 0.5,
      stored as compressed RLE (`pycocotools.mask.encode`, counts as text so the results are JSON);
    - mask AP ignores a result's `bbox`: pycocotools would otherwise take the box's area, not the mask's, to
      decide small / medium / large. Box AP of the same results is reported under "box".
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from pixelforge.engine.devices import model_device, on_inference_device
from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError
from pixelforge.runs.result import EvalResult
from pixelforge.metrics.coco import (as_coco, check_result_categories, empty_metrics, coco_metrics, complete_ground_truth,
                                             named_stats, plot_pr_curves)

MASK_THRESHOLD = 0.5  # mask probability above which a pixel belongs to the object (Mask R-CNN's paper and tools)
GALLERY_IMAGES = 6
GALLERY_SCORE = 0.5  # detections drawn in the evaluation gallery


def instance_metrics(gt: dict, results: list[dict], categories: dict[int, str] | None = None) -> dict:
    """COCO mask AP of `results` ([{image_id, category_id, segmentation RLE, score[, bbox]}]) against COCO `gt`.

    Returns coco_metrics' keys (map, map50, map75, map_small/medium/large, mar_1/10/100, per_class, ...) for the
    masks, plus "box": the same keys for the boxes (a result's `bbox`, else its mask's bounding box).

    Example:
        >>> mask = np.zeros((1, 8, 8), np.uint8); mask[0, 2:6, 2:6] = 1
        >>> gt = {"images": [{"id": 1, "width": 8, "height": 8}], "categories": [{"id": 1, "name": "a"}],
        ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 4, 4], "area": 16,
        ...                        "iscrowd": 0, "segmentation": encode_masks(mask)[0]}]}
        >>> result = {"image_id": 1, "category_id": 1, "segmentation": encode_masks(mask)[0], "score": 0.9}
        >>> metrics = instance_metrics(gt, [result])
        >>> round(metrics["map50"], 6), round(metrics["box"]["map50"], 6)
        (1.0, 1.0)
    """
    from pycocotools import mask as mask_utils
    from pycocotools.cocoeval import COCOeval

    gt = complete_segm_ground_truth(gt)
    names = categories or {int(c["id"]): str(c.get("name", c["id"])) for c in gt["categories"]}
    for index, row in enumerate(results):
        if not isinstance(row.get("segmentation"), dict):
            raise PixelforgeError(f"result #{index} (image {row.get('image_id')}) has no RLE 'segmentation'; instance "
                                  "results need {image_id, category_id, segmentation, score}")
    boxes = [r if r.get("bbox") else {**r, "bbox": mask_utils.toBbox(_rle(r["segmentation"])).tolist()}
             for r in results]
    box = coco_metrics(gt, boxes, names)
    if not results or not gt.get("annotations"):
        return {**empty_metrics(names, bool(gt.get("annotations")), len(gt["images"]), len(results)), "box": box}
    coco_gt = as_coco(gt)
    masks_only = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):  # loadRes, evaluate and summarize all print progress
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(masks_only), iouType="segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = named_stats(evaluator, names)
    metrics["num_images"], metrics["num_detections"], metrics["box"] = len(gt["images"]), len(results), box
    return metrics


def complete_segm_ground_truth(gt: dict) -> dict:
    """`complete_ground_truth` plus a box-shaped polygon for any annotation without a segmentation (as loadRes
    does for box results), so a partly outlined dataset is scored rather than crashing COCOeval."""
    gt = complete_ground_truth(gt)
    for ann in gt.get("annotations", []):
        if not ann.get("segmentation"):
            x, y, w, h = ann["bbox"]
            ann["segmentation"] = [[x, y, x, y + h, x + w, y + h, x + w, y]]
    return gt


def _rle(segmentation: dict) -> dict:
    return {**segmentation, "counts": segmentation["counts"].encode("ascii")} \
        if isinstance(segmentation["counts"], str) else segmentation


def encode_masks(masks: np.ndarray) -> list[dict]:
    """Binary masks [N, H, W] as COCO compressed RLEs with text counts (JSON-ready)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    return [{"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def instance_results(output: dict, image_id: int, input_hw: tuple[int, int], original_wh: tuple[int, int],
                     category_ids: list[int]) -> list[dict]:
    """One image's Mask R-CNN output as COCO results: boxes and masks mapped back to the original pixels.

    Masks are resized as probabilities and thresholded afterwards, so edges are not the staircase of an upscaled
    binary mask.
    """
    from pixelforge.tasks.common.boxes import coco_results

    rows = coco_results(output, image_id, input_hw, original_wh, category_ids)
    if rows:
        probs = F.interpolate(output["masks"].detach().float().cpu(), size=(original_wh[1], original_wh[0]),
                              mode="bilinear", align_corners=False)[:, 0]
        for row, rle in zip(rows, encode_masks((probs > MASK_THRESHOLD).numpy())):
            row["segmentation"] = rle
    return rows


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset, sizes: dict[int, tuple[int, int]], category_ids: list[int],
                    batch_size: int = 4) -> list[dict]:
    """COCO results for every image of a `BoxDataset` (sizes: original (width, height) by image id)."""
    from pixelforge.tasks.common.boxes import same_canvas_batches

    model.eval()
    device = model_device(model)  # the images go where the model is (a GPU for evaluation when there is one)
    found: dict[int, list] = {}
    # One canvas a batch: padding to a larger companion would change results (see same_canvas_batches).
    for batch in same_canvas_batches(dataset, batch_size, model):
        for (i, (image, target)), output in zip(batch, model([image.to(device) for _, (image, _) in batch])):
            image_id = int(target["image_id"])
            found[i] = instance_results({key: value.cpu() for key, value in output.items()}, image_id,
                                        tuple(image.shape[-2:]), sizes[image_id], category_ids)
    return [row for i in range(len(dataset)) for row in found[i]]


def score_instance_files(gt_json: str | Path, results_json: str | Path) -> dict:
    """Mask AP (and box AP under "box") of a COCO results file with RLE masks against a COCO annotations file."""
    from pixelforge.data.boxes.coco import load_json

    gt = load_json(Path(gt_json))
    try:
        results = json.loads(Path(results_json).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{results_json}: cannot read COCO results ({exc}); give a JSON list of results") from None
    if not isinstance(results, list):
        raise PixelforgeError(f"{results_json}: COCO results must be a JSON list of {{image_id, category_id, "
                              "segmentation, score}")
    image_ids = {image.get("id") for image in gt.get("images", []) if isinstance(image, dict)}
    for index, row in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "score") if k not in row] if isinstance(row, dict) \
            else ["all"]
        if missing:  # pycocotools would stop on a KeyError (or an assertion, below) with a traceback
            raise PixelforgeError(f"{results_json}: result {index} lacks {', '.join(missing)}; each result needs "
                                  "image_id, category_id, segmentation (RLE) and score")
        if row["image_id"] not in image_ids:
            raise PixelforgeError(f"{results_json}: result {index} has image_id {row['image_id']}, which {gt_json} "
                                  "does not list; `pixelforge predict` numbers images its own way (images.json): "
                                  "score the predictions.json `pixelforge evaluate RUN` writes, or results made for "
                                  "this file")
    check_result_categories(gt, results, gt_json, results_json)
    return instance_metrics(gt, results)


# --- trained runs --------------------------------------------------------------------------------------------------

@dataclass
class InstanceRun:
    """A trained run rebuilt for inference: the model, its classes and the COCO category id of each."""

    run_dir: Path
    config: object  # the run config (RunConfig subclass)
    classes: list[str]
    category_ids: list[int]
    model: torch.nn.Module


def load_instance_run(run_dir: str | Path, checkpoint: str = "best.ckpt") -> InstanceRun:
    """Rebuild the run's Mask R-CNN from config.yaml (no download) and load its checkpoint."""
    from pixelforge.tasks.common.run import read_run
    from pixelforge.models.instance import build_mask_rcnn_for_run

    run, cfg, classes, state = read_run(run_dir, "instance", checkpoint)
    model = build_mask_rcnn_for_run(cfg, len(classes))
    model.load_state_dict(state["model"])
    ids = state.get("category_ids") or list(range(1, len(classes) + 1))
    return InstanceRun(run, cfg, classes, [int(i) for i in ids], model.eval())


def evaluate_instance(run_dir: str | Path, data: str | None = None, split: str | None = None,
                      out: str | Path | None = None, include_train: bool = False) -> EvalResult:
    """Score the run's best checkpoint on a split (default: test if the data has one, else val); writes
    metrics.json, predictions.json (COCO results with RLE masks) and predictions.png to `out` (default
    RUN/eval-<split>). With `data`, the run's own training images are left out (counted in
    `excluded_training_images`) unless `include_train`.

    Example:
        >>> evaluate_instance("runs/instance-shapes").metrics["map50"]  # doctest: +SKIP
        0.93
    """
    from pixelforge.data.boxes.coco import coco_dict
    from pixelforge.data.boxes.dataset import BoxDataset
    from pixelforge.data.boxes.transforms import eval_box_transform

    run = load_instance_run(run_dir)
    from pixelforge.tasks.common.boxes import select_box_images
    from pixelforge.tasks.common.held_out import leave_out_training_images
    from pixelforge.tasks.instance.data import prepare_data, require_outlines

    images, categories, name, mapping = select_box_images(run.config, run.classes, data, split, prepare_data)
    images, excluded = leave_out_training_images(images, lambda i: i.path, lambda: [
        i.path for i in prepare_data(run.config)[0].split("train")], data, name, include_train)
    require_outlines(images, data or run.config.data, f"mask AP needs them ({name} split): add outlines, or score "
                                                      "boxes with a --task detect run")
    size = run.config.img_size
    dataset = BoxDataset(images, sorted(categories), eval_box_transform(size), size)
    unreadable = dataset.preload()
    gt = coco_dict(dataset.images, categories)
    sizes = {int(i["id"]): (i["width"], i["height"]) for i in gt["images"]}
    with on_inference_device(run.model):
        results = predict_dataset(run.model, dataset, sizes, mapping)
    metrics = {**instance_metrics(gt, results, categories), "split": name, "excluded_training_images": excluded}
    request = {"data": rd.data_key(data), "split": name, **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, run.run_dir / f"eval-{name}", request)
    rd.write_json(out_dir / "predictions.json", results)
    figures = {"pr_curves": plot_pr_curves(metrics, out_dir / "pr_curves.png",
                                           f"{name} split: mask precision-recall at IoU 0.50")}
    if dataset.images:
        figures["predictions"] = plot_instance_gallery(dataset.images[:GALLERY_IMAGES], results, categories,
                                                       out_dir / "predictions.png")
    rd.write_json(out_dir / "metrics.json", metrics)
    return EvalResult(metrics, out_dir, figures, unreadable)


def predict_instance(run_dir: str | Path, paths: list[str | Path], out: str | Path, score_threshold: float = 0.3,
                     nms_iou: float = 0.5) -> list[dict]:
    """Find and outline objects in image files, folders or globs with a trained run.

    Writes, as `predict_detection` does, OUT/predictions.json (COCO results: image_id, category_id, bbox, score,
    plus the RLE `segmentation`, all in each file's own pixels), OUT/images.json (image ids -> files and sizes;
    ids follow the order of the files) and OUT/NAME.png with masks and boxes drawn. `nms_iou` drops a
    lower-scoring object of the same class whose box overlaps a kept one by more (on top of the model's own NMS
    at 0.5, so only lower values change anything).

    Returns:
        One dict per image: path, image_id, annotated, detections [{label, category_id, score, box [x1, y1, x2,
        y2], area (mask pixels)}] and a one-line summary; or path and error for an unreadable image.

    Example:
        >>> predict_instance("runs/instance-shapes", ["photos/"], "predictions")[0]["summary"]  # doctest: +SKIP
        '2 objects: circle 0.98, star 0.91'
    """
    from pixelforge.data.boxes.dataset import decode_box_image
    from pixelforge.data.boxes.source import BoxImage, empty_boxes, image_size
    from pixelforge.data.images import ImageReadError
    from pixelforge.data.sources import collect_paths

    files = collect_paths([str(p) for p in paths])
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    run = load_instance_run(run_dir)
    names = dict(zip(run.category_ids, run.classes))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    answers, kept_results, entries, used = [], [], [], set()
    for image_id, path in enumerate(files, start=1):
        # The original size (from the file header) lets results be reported in the file's own pixels.
        image = BoxImage(Path(path), *(image_size(Path(path)) or (0, 0)), *empty_boxes(), image_id, None)
        try:
            pixels, _, _ = decode_box_image(image, run.config.img_size)
        except ImageReadError as exc:
            answers.append({"path": str(path), "detections": None, "error": str(exc)})
            continue
        with torch.no_grad():
            output = _filter(run.model([pixels.float() / 255])[0], score_threshold, nms_iou)
        found = instance_results(output, image_id, tuple(pixels.shape[-2:]), (image.width, image.height),
                                 run.category_ids)
        kept_results += found
        entries.append({"id": image_id, "file_name": str(path), "width": image.width, "height": image.height})
        stem = image.path.stem if image.path.stem not in used else f"{image_id}_{image.path.stem}"
        used.add(stem)
        annotated = out / f"{stem}.png"
        draw_instances(_display(path), found, names).save(annotated)
        detections = [{"label": names[r["category_id"]], "category_id": r["category_id"], "score": r["score"],
                       "box": [r["bbox"][0], r["bbox"][1], round(r["bbox"][0] + r["bbox"][2], 2),
                               round(r["bbox"][1] + r["bbox"][3], 2)],
                       "area": int(_area(r["segmentation"]))} for r in found]
        listed = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections)
        answers.append({"path": str(path), "image_id": image_id, "annotated": str(annotated),
                        "detections": detections,
                        "summary": f"{len(detections)} object{'s' * (len(detections) != 1)}"
                                   + (f": {listed}" if listed else "")})
    rd.write_json(out / "predictions.json", kept_results)
    rd.write_json(out / "images.json", entries)
    return answers


def _filter(output: dict, score_threshold: float, nms_iou: float) -> dict:
    from torchvision.ops import batched_nms

    keep = torch.nonzero(output["scores"] >= score_threshold).flatten()
    keep = keep[batched_nms(output["boxes"][keep], output["scores"][keep], output["labels"][keep], nms_iou)]
    return {key: value[keep] for key, value in output.items()}


def _area(segmentation: dict) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(_rle(segmentation)))


# --- pictures ------------------------------------------------------------------------------------------------------

def _display(path) -> np.ndarray:
    from pixelforge.data.images import load_rgb

    return np.asarray(load_rgb(path))


def _colours(count: int) -> list[tuple[int, int, int]]:
    """One colour per object (tab10, cycled): touching objects of one class must still look separate."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return [tuple(int(255 * c) for c in palette(i % 10)[:3]) for i in range(count)]


def draw_instances(image: np.ndarray, rows: list[dict], names: dict[int, str], scores: bool = True,
                   zoom: int = 1):
    """`image` (HxWx3 uint8) with each result's mask filled and its box outlined and labelled, as a PIL image.

    `zoom` enlarges the picture (nearest neighbour) before drawing, so labels stay legible on small images.
    """
    from PIL import Image
    from pycocotools import mask as mask_utils
    from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

    canvas = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
    canvas = canvas.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)
    if rows:
        masks = torch.from_numpy(np.stack([mask_utils.decode(_rle(r["segmentation"])) for r in rows])).bool()
        masks = masks.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)
        colours = _colours(len(rows))
        canvas = draw_segmentation_masks(canvas, masks, alpha=0.5, colors=colours)
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rows)]) * zoom
        labels = [names.get(r["category_id"], str(r["category_id"])) + (f" {r['score']:.2f}" if scores else "")
                  for r in rows]
        canvas = draw_bounding_boxes(canvas, boxes.float(), labels, colors=colours, width=max(1, zoom))
    return Image.fromarray(canvas.permute(1, 2, 0).numpy())


def plot_instance_gallery(images: list, results: list[dict], names: dict[int, str], path: Path,
                          min_score: float = GALLERY_SCORE) -> Path:
    """Truth (left) beside prediction (right, results scoring >= min_score) for each `BoxImage`; a PNG.
    Drawn by the Pillow gallery (viz/grid.py), each row as tall as its picture: matplotlib's subplots and tight
    layout cost more than the drawing."""
    from pixelforge.data.boxes.dataset import rasterize
    from pixelforge.viz.grid import plot_gallery

    pictures, titles = [], []
    for image in images:
        pixels = _display(image.path)
        truth = [{"category_id": int(c), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0,
                  "segmentation": encode_masks(rasterize(s, image.height, image.width)[None])[0]}
                 for c, (x1, y1, x2, y2), s, crowd in zip(image.labels, image.boxes.tolist(),
                                                          image.segmentations or [[]] * len(image.labels),
                                                          image.iscrowd) if not crowd]
        predicted = [r for r in results if r["image_id"] == image.image_id and r["score"] >= min_score]
        zoom = max(1, round(320 / max(pixels.shape[:2])))
        pictures += [draw_instances(pixels, truth, names, scores=False, zoom=zoom),
                     draw_instances(pixels, predicted, names, zoom=zoom)]
        titles += [f"truth: {len(truth)} object(s) - {image.path.name}",
                   f"prediction (score >= {min_score}): {len(predicted)}"]
    return plot_gallery(pictures, titles, path, columns=2, cell=340)
