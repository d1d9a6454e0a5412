"""`pixelforge predict PACKAGE IMAGES --out DIR` for detection and instance packages, without torch.

Writes what `predict_detection` / `predict_instance` write from a run: OUT/predictions.json (COCO results:
image_id, category_id, bbox, score, and for instance packages the RLE `segmentation`, in each file's own pixels),
OUT/images.json (image ids -> files and sizes; ids follow the order of the files) and OUT/NAME.png with the boxes
(and masks) drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from pixelforge.data.images import ImageReadError, load_rgb
from pixelforge.data.sources import collect_paths
from pixelforge.deploy.runtime.boxes import classwise_nms
from pixelforge.deploy.runtime.draw import blend_instances, draw_boxes
from pixelforge.deploy.runtime.rle import encode_mask
from pixelforge.errors import PixelforgeError


def predict_box_files(runtime, paths: list, out: Path, score_threshold: float = 0.3, nms_iou: float = 0.5,
                      progress: Callable[[int], None] | None = None) -> list[dict]:
    """One dict per image: path, image_id, annotated, detections [{label, category_id, score, box, and area (mask
    pixels) when the package has masks}], a one-line summary; or path, detections None and error when unreadable.

    `runtime` is a `DetectionRuntime` (or an instance one, whose detections carry masks); `nms_iou` drops a
    lower-scoring box of the same class that overlaps a kept one by more.
    """
    files = collect_paths([str(p) for p in paths])
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    ids = runtime.package.manifest.get("category_ids") or list(range(1, len(runtime.classes) + 1))
    category_of = dict(zip(runtime.classes, ids))
    out.mkdir(parents=True, exist_ok=True)
    results, answers, entries, used = [], [], [], set()
    for image_id, path in enumerate(files, start=1):
        try:
            image = load_rgb(path)
        except ImageReadError as exc:
            answers.append({"path": str(path), "detections": None, "error": str(exc)})
            continue
        found = [d for d in runtime.predict_images([image])[0]["detections"] if d["score"] >= score_threshold]
        keep = classwise_nms(found, nms_iou)
        detections = [_listed(d, category_of) for d in keep]
        results += [_coco_result(image_id, d, kept) for d, kept in zip(detections, keep)]
        stem = Path(path).stem if Path(path).stem not in used else f"{image_id}_{Path(path).stem}"
        used.add(stem)
        _save_picture(image, keep, runtime.classes, out / f"{stem}.png")
        entries.append({"id": image_id, "file_name": str(path), "width": image.width, "height": image.height})
        listed = ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections)
        answers.append({"path": str(path), "image_id": image_id, "annotated": str(out / f"{stem}.png"),
                        "detections": detections, "summary": f"{len(detections)} object{'s' * (len(detections) != 1)}"
                                                             + (f": {listed}" if listed else "")})
        if progress is not None:
            progress(1)
    (out / "predictions.json").write_text(json.dumps(results, indent=2))
    (out / "images.json").write_text(json.dumps(entries, indent=2))
    return answers


def _listed(det: dict, category_of: dict) -> dict:
    """A kept detection as the result dict lists it (rounded; the mask's pixel count as its area)."""
    return {"label": det["label"], "category_id": int(category_of[det["label"]]), "score": round(det["score"], 5),
            "box": [round(v, 2) for v in det["box"]], **({"area": int(det["mask"].sum())} if "mask" in det else {})}


def _coco_result(image_id: int, listed: dict, det: dict) -> dict:
    x1, y1, x2, y2 = listed["box"]
    return {"image_id": image_id, "category_id": listed["category_id"], "score": listed["score"],
            "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)],
            **({"segmentation": encode_mask(det["mask"])} if "mask" in det else {})}


def _save_picture(image: Image.Image, keep: list[dict], classes: list[str], path: Path) -> None:
    frame = np.ascontiguousarray(np.asarray(image)[..., ::-1])  # OpenCV draws on BGR
    with_masks = [d for d in keep if "mask" in d]
    if with_masks:
        blend_instances(frame, with_masks, classes)
    draw_boxes(frame, keep, classes)
    Image.fromarray(np.ascontiguousarray(frame[..., ::-1])).save(path)
