"""The JSON a box or mask package answers with per image, and the one-line summaries the video draws.

    detect:  {"task": "detect", "width", "height", "detections": [{"box": [x1, y1, x2, y2], "score", "label"}]}
             boxes in the uploaded image's own pixels (after EXIF rotation), clipped to it, best score first,
             only those scoring at least `score_threshold`
    instance: as detect with "task": "instance" and each detection's mask as "rle": COCO RLE {"size": [h, w],
             "counts": str} at the image's size
    segment: {"task": "segment", "width", "height", "class_fractions": {class: share of pixels},
              "mask_png": base64 palette PNG at the image's size (pixel value = class id; background and ignored
                          pixels transparent)}           -- ?format=png, the default
             or "rle": {class: COCO RLE {"size": [h, w], "counts": str}} instead      -- ?format=rle

The runtimes' `answer` methods call these (detect.py, instance.py, segment.py); classification answers its
top-k labels itself (classify.py).
"""

from __future__ import annotations

import numpy as np

from pixelforge.deploy.runtime.draw import class_fractions, has_background, mask_png_base64
from pixelforge.deploy.runtime.rle import encode_mask, mask_rle

MASK_FORMATS = ("png", "rle")


def keep_detections(detections: list[dict], score_threshold: float, width: int, height: int) -> list[dict]:
    """Detections scoring at least `score_threshold`, boxes clipped to the image and rounded to 0.01 px,
    best score first."""
    kept = []
    for det in detections:
        score = float(det["score"])
        if score < score_threshold:
            continue
        x1, y1, x2, y2 = (float(v) for v in det["box"])
        box = [round(min(max(x1, 0.0), width), 2), round(min(max(y1, 0.0), height), 2),
               round(min(max(x2, 0.0), width), 2), round(min(max(y2, 0.0), height), 2)]
        kept.append({"box": box, "score": round(score, 6), "label": str(det["label"])})
    return sorted(kept, key=lambda d: -d["score"])


def detection_answer(result: dict, width: int, height: int, score_threshold: float) -> dict:
    return {"task": "detect", "width": width, "height": height,
            "detections": keep_detections(result["detections"], score_threshold, width, height)}


def segmentation_answer(result: dict, classes: list[str], width: int, height: int, mask_format: str = "png") -> dict:
    mask = np.asarray(result["mask"])
    if mask.shape != (height, width):  # a runtime bug, not a user mistake: never send a mask of the wrong size
        raise ValueError(f"mask shape {mask.shape} is not the image's {(height, width)}")
    answer = {"task": "segment", "width": width, "height": height, "class_fractions": class_fractions(mask, classes)}
    if mask_format == "rle":
        answer["rle"] = mask_rle(mask, classes)
    else:
        answer["mask_png"] = mask_png_base64(mask, classes)
    return answer


def instance_answer(result: dict, width: int, height: int, score_threshold: float) -> dict:
    """Detection's answer plus each detection's mask as COCO RLE ("rle") at the image's own size."""
    found = [d for d in result["detections"] if float(d["score"]) >= score_threshold]
    found.sort(key=lambda d: -float(d["score"]))  # keep_detections' order, so masks stay with their boxes
    detections = keep_detections(found, score_threshold, width, height)
    for det, source in zip(detections, found):
        det["rle"] = encode_mask(source["mask"])
    return {"task": "instance", "width": width, "height": height, "detections": detections}


def boxes_summary(detections: list[dict]) -> str:
    """One line for overlays: how many objects and the best one."""
    if not detections:
        return "nothing found"
    best = detections[0]
    return f"{len(detections)} found, best {best['label']} {100 * best['score']:.0f}%"


def classes_summary(classes: list[str], fractions: dict[str, float]) -> str:
    """One line for overlays: the three largest classes other than the background."""
    skip = classes[0] if has_background(classes) else None
    shares = sorted(((share, name) for name, share in fractions.items() if share > 0 and name != skip), reverse=True)
    return "  ".join(f"{name} {100 * share:.1f}%" for share, name in shares[:3]) or "background only"
