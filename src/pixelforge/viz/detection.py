"""Pictures of detections: boxes drawn on images (torchvision's draw_bounding_boxes) and a predictions-vs-truth grid."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as F
from torchvision.utils import draw_bounding_boxes

# One colour per class (matplotlib's tab10), ground truth always white-on-green so it never looks like a class.
PALETTE = ["#1f77b4", "#ff7f0e", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#2ca02c"]
TRUTH_COLOR = "#00ff00"
SHOW_SCORE = 0.3  # detections drawn in the evaluation gallery (evaluation itself keeps them all)


def _xyxy(bbox: list[float], scale_x: float, scale_y: float) -> list[float]:
    x, y, w, h = bbox
    return [x * scale_x, y * scale_y, (x + w) * scale_x, (y + h) * scale_y]


def draw_boxes(image: torch.Tensor, results: list[dict], names: dict[int, str], original_wh: tuple[int, int],
               truth: list[tuple[list[float], int]] | None = None, display: int | None = None) -> torch.Tensor:
    """`image` (uint8 [3, H, W]) with COCO `results` (in original pixels) drawn on it, and optional truth boxes.

    `display` enlarges small images first so that labels stay legible.
    """
    if display and max(image.shape[-2:]) < display:
        image = F.resize(image, size=None, max_size=display, antialias=True)
    sx, sy = image.shape[-1] / max(original_wh[0], 1), image.shape[-2] / max(original_wh[1], 1)
    order = sorted(names)
    if truth:
        boxes = torch.tensor([_xyxy(b, sx, sy) for b, _ in truth])
        image = draw_bounding_boxes(image, boxes, colors=TRUTH_COLOR, width=1)
    if results:
        boxes = torch.tensor([_xyxy(r["bbox"], sx, sy) for r in results])
        labels = [f"{names.get(r['category_id'], r['category_id'])} {r['score']:.2f}" for r in results]
        colors = [PALETTE[order.index(r["category_id"]) % len(PALETTE)] if r["category_id"] in names else "#000000"
                  for r in results]
        image = draw_bounding_boxes(image, boxes, labels=labels, colors=colors, width=2)
    return image


def draw_detections(image: torch.Tensor, results: list[dict], names: dict[int, str], original_wh: tuple[int, int],
                    path: Path) -> Path:
    """Save `image` with its detections as a PNG (at least 320 px on the long side)."""
    from PIL import Image

    drawn = draw_boxes(image, results, names, original_wh, display=320)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(path)
    return Path(path)


def detection_gallery(images: list, pixels: list[torch.Tensor], results: list[dict], categories: dict[int, str],
                      path: Path, count: int = 12) -> Path:
    """A grid of up to `count` images: ground truth in green, detections scoring >= SHOW_SCORE in class colours."""
    from pixelforge.viz.grid import plot_gallery

    by_image: dict[int, list] = {}
    for r in results:
        if r["score"] >= SHOW_SCORE:
            by_image.setdefault(r["image_id"], []).append(r)
    panels, titles = [], []
    for image, canvas in list(zip(images, pixels))[:count]:
        found = by_image.get(image.image_id, [])
        truth = [([x1, y1, x2 - x1, y2 - y1], int(c)) for (x1, y1, x2, y2), c, crowd
                 in zip(image.boxes.tolist(), image.labels.tolist(), image.iscrowd.tolist()) if not crowd]
        drawn = draw_boxes(canvas, found, categories, (image.width, image.height), truth, display=256)
        panels.append(drawn.permute(1, 2, 0).numpy())
        titles.append(f"{image.path.name}: {len(truth)} true, {len(found)} found")
    return plot_gallery(panels, titles, path, columns=4)
