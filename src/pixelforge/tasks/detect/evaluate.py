"""Detection runs after training: evaluate on a split, score COCO files made elsewhere, predict boxes for images.

A detection run folder holds config.yaml, classes.json (category names in id order) and checkpoints/best.ckpt
(with the category ids); `load_detector` rebuilds the exact detector from the config without downloading
anything. Evaluation is COCO's (pycocotools, see `coco_eval`), on the original images' pixels, so the numbers
compare with any other COCO-evaluated detector on the same annotations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelforge.engine.devices import on_inference_device
from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError
from pixelforge.runs.result import EvalResult
from pixelforge.metrics.coco import check_result_categories, coco_metrics, plot_pr_curves
from pixelforge.tasks.common.boxes import select_box_images
from pixelforge.tasks.common.held_out import leave_out_training_images


@dataclass
class LoadedDetector:
    run_dir: Path
    config: object  # the run config (RunConfig subclass)
    classes: list[str]
    category_ids: list[int]  # label i + 1 <-> category_ids[i]
    model: torch.nn.Module  # eval mode, CPU


def load_detector(run_dir: str | Path, checkpoint: str = "best.ckpt") -> LoadedDetector:
    """Rebuild a detection run's model from its config and load `checkpoint` (no weights are downloaded)."""
    from pixelforge.tasks.common.run import read_run
    from pixelforge.models.detectors import build_detector_for_run

    run, cfg, classes, state = read_run(run_dir, "detect", checkpoint)
    model = build_detector_for_run(cfg, len(classes))
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedDetector(run, cfg, classes, list(state.get("category_ids", range(1, len(classes) + 1))), model)


@torch.no_grad()
def run_detector(loaded: LoadedDetector, images: list, label_to_category: list[int], batch_size: int = 8):
    """Detect objects in `images` (BoxImages); returns (COCO results, kept images, model-input pixels, unreadable).

    `label_to_category[i]` is the category id reported for label i + 1 (the data's own ids when scoring on it).
    """
    from pixelforge.data.boxes.dataset import BoxDataset
    from pixelforge.data.boxes.transforms import eval_box_transform
    from pixelforge.tasks.common.boxes import coco_results, same_canvas_batches

    size = loaded.config.img_size
    data = BoxDataset(images, sorted({int(c) for image in images for c in image.labels}), eval_box_transform(size), size)
    unreadable = data.preload()
    found: dict[int, list] = {}
    pixels: list = [None] * len(data)
    with on_inference_device(loaded.model) as device:
        for batch in same_canvas_batches(data, batch_size, loaded.model):
            for (i, (image, target)), output in zip(batch, loaded.model([image.to(device) for _, (image, _) in batch])):
                box_image = data.images[i]
                found[i] = coco_results({key: value.cpu() for key, value in output.items()}, int(target["image_id"]),
                                        tuple(image.shape[-2:]), (box_image.width, box_image.height), label_to_category)
                pixels[i] = (image * 255).round().to(torch.uint8)
    results = [row for i in range(len(data)) for row in found[i]]  # in the images' order, as before
    return results, data.images, pixels, unreadable


def evaluate_detection(run_dir: str | Path, data: str | None = None, split: str | None = None,
                       out: str | Path | None = None, loaded: LoadedDetector | None = None,
                       include_train: bool = False) -> EvalResult:
    """COCO metrics of the run's best checkpoint; figures and detections go to `out` (default RUN/eval-<split>).

    Which images: the run's own data split as in training (test when it has one, else val), or `data` (its test
    split, else val, else train; all images when it has no splits), or the named `split`. With `data`, the run's
    own training images are left out (counted in `excluded_training_images`) unless `include_train`.

    Example:
        >>> evaluate_detection("runs/detect-shapes").metrics["map50"]  # doctest: +SKIP
        0.93
    """
    from pixelforge.data.boxes.coco import coco_dict
    from pixelforge.viz.detection import detection_gallery

    loaded = loaded or load_detector(run_dir)
    from pixelforge.tasks.detect.task import prepare_data

    images, categories, name, mapping = select_box_images(loaded.config, loaded.classes, data, split, prepare_data)
    images, excluded = leave_out_training_images(images, lambda i: i.path, lambda: [
        i.path for i in prepare_data(loaded.config)[0].split("train")], data, name, include_train)
    results, kept, pixels, unreadable = run_detector(loaded, images, mapping)
    gt = coco_dict(kept, categories)
    metrics = {**coco_metrics(gt, results), "split": name, "excluded_training_images": excluded}
    request = {"data": rd.data_key(data), "split": name, **({"include_train": True} if include_train else {})}
    out_dir = rd.evaluation_dir(out, loaded.run_dir / f"eval-{name}", request)
    rd.write_json(out_dir / "detections.json", results)
    rd.write_json(out_dir / "metrics.json", metrics)
    figures = {"pr_curves": plot_pr_curves(metrics, out_dir / "pr_curves.png", f"{name} split: precision-recall at IoU 0.50"),
               "gallery": detection_gallery(kept, pixels, results, categories, out_dir / "gallery.png")}
    return EvalResult(metrics, out_dir, figures, unreadable)


def _load_json(path: str | Path, what: str):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PixelforgeError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PixelforgeError(f"{path}: not valid JSON ({exc}); give a COCO {what} file") from None


def score_coco_files(gt_json: str | Path, results_json: str | Path) -> dict:
    """COCO metrics of a results file ([{image_id, category_id, bbox, score}]) against a COCO annotations file.

    Example:
        >>> score_coco_files("annotations/val.json", "detections.json")["map50"]  # doctest: +SKIP
        0.91
    """
    gt = _load_json(gt_json, "ground-truth")
    if not isinstance(gt, dict) or not all(isinstance(gt.get(k), list) for k in ("images", "annotations", "categories")):
        raise PixelforgeError(f"{gt_json}: not COCO ground truth; it needs 'images', 'annotations' and 'categories' lists")
    results = _load_json(results_json, "results")
    if isinstance(results, dict) and isinstance(results.get("annotations"), list):
        results = results["annotations"]  # a COCO file with scores works as results too
    if not isinstance(results, list):
        raise PixelforgeError(f"{results_json}: COCO results are a JSON list of {{image_id, category_id, bbox, score}}")
    image_ids = {img.get("id") for img in gt["images"]}
    for index, r in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r] if isinstance(r, dict) else ["all"]
        if missing:
            raise PixelforgeError(f"{results_json}: result {index} lacks {', '.join(missing)}; each result needs "
                                  "image_id, category_id, bbox [x, y, w, h] and score")
        if r["image_id"] not in image_ids:
            raise PixelforgeError(f"{results_json}: result {index} has image_id {r['image_id']}, which {gt_json} "
                                  "does not list; were they made for another annotation file?")
        if not (isinstance(r["bbox"], list) and len(r["bbox"]) == 4):
            raise PixelforgeError(f"{results_json}: result {index} bbox must be [x, y, width, height]")
    check_result_categories(gt, results, gt_json, results_json)
    return coco_metrics(gt, results)


def predict_detection(run_dir: str | Path, paths: list[str | Path], out: str | Path, score_threshold: float = 0.3,
                      nms_iou: float = 0.5) -> list[dict]:
    """Detect objects in image files/folders; write predictions.json (COCO results) and annotated PNGs to `out`.

    Image ids follow the order of the files (1, 2, ...); images.json maps them to the files.

    Example:
        >>> predict_detection("runs/detect-shapes", ["photos/"], "predictions")[0]["detections"][0]  # doctest: +SKIP
        {'label': 'circle', 'category_id': 1, 'score': 0.97, 'box': [12.0, 30.5, 60.2, 79.0]}
    """
    from torchvision.ops import batched_nms

    from pixelforge.data.boxes.coco import image_size
    from pixelforge.data.boxes.source import BoxImage, empty_boxes
    from pixelforge.data.images import load_rgb
    from pixelforge.data.sources import collect_paths
    from pixelforge.viz.detection import draw_detections

    files = collect_paths([str(p) for p in paths])
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    loaded = load_detector(run_dir)
    # The original sizes (from file headers) let detections be reported in the files' own pixels.
    images = [BoxImage(Path(f), *(image_size(Path(f)) or (0, 0)), *empty_boxes(), i + 1, None)
              for i, f in enumerate(files)]
    results, kept, _, unreadable = run_detector(loaded, images, loaded.category_ids)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = dict(zip(loaded.category_ids, loaded.classes))
    by_image: dict[int, list] = {}
    for r in results:
        if r["score"] >= score_threshold:
            by_image.setdefault(r["image_id"], []).append(r)
    kept_results, summary, used = [], [], set()
    for image in kept:
        found = by_image.get(image.image_id, [])
        if found:  # class-wise NMS at the user's IoU (the model's own NMS used its built-in threshold)
            xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in found)])
            keep = batched_nms(xyxy, torch.tensor([r["score"] for r in found]),
                               torch.tensor([r["category_id"] for r in found]), nms_iou)
            found = [found[int(k)] for k in keep]
        kept_results += found
        stem = image.path.stem if image.path.stem not in used else f"{image.image_id}_{image.path.stem}"
        used.add(stem)
        original = torch.from_numpy(np.asarray(load_rgb(image.path)).copy()).permute(2, 0, 1)
        annotated = draw_detections(original, found, names, (image.width, image.height), out / f"{stem}.png")
        detections = [{"label": names[r["category_id"]], "category_id": r["category_id"], "score": r["score"],
                       "box": [r["bbox"][0], r["bbox"][1], round(r["bbox"][0] + r["bbox"][2], 2),
                               round(r["bbox"][1] + r["bbox"][3], 2)]} for r in found]
        listed = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections)  # a package's row has it too
        summary.append({"path": str(image.path), "image_id": image.image_id, "annotated": str(annotated),
                        "detections": detections, "summary": f"{len(detections)} object{'s' * (len(detections) != 1)}"
                                                             + (f": {listed}" if listed else "")})
    rd.write_json(out / "predictions.json", kept_results)
    rd.write_json(out / "images.json", [{"id": i.image_id, "file_name": str(i.path), "width": i.width,
                                         "height": i.height} for i in kept])
    for message in unreadable:
        summary.append({"path": message.split(": ", 1)[0], "detections": None, "error": message})
    return summary
