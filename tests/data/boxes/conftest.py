"""Tiny detection datasets written into tmp_path: a 3-image COCO set whose boxes are drawn rectangles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# (file, split, width, height, [(category_id, x, y, w, h), ...])
TINY = [
    ("train/a.png", "train", 64, 48, [(1, 4, 6, 20, 10), (2, 30, 20, 25, 24)]),
    ("train/b.png", "train", 40, 56, [(2, 10, 10, 12, 30)]),
    ("val/c.png", "val", 48, 48, []),
]
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def draw(path: Path, width: int, height: int, boxes) -> None:
    """A black image with each box filled in white, so pixels and boxes can be compared."""
    pixels = np.zeros((height, width, 3), np.uint8)
    for _, x, y, w, h in boxes:
        pixels[y:y + h, x:x + w] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_tiny_coco(root: Path, images=TINY, categories=CATEGORIES) -> Path:
    by_split: dict[str, dict] = {}
    ann_id = 0
    for image_id, (name, split, width, height, boxes) in enumerate(images, start=1):
        draw(root / "images" / name, width, height, boxes)
        data = by_split.setdefault(split, {"images": [], "annotations": [], "categories": categories})
        data["images"].append({"id": image_id, "file_name": name, "width": width, "height": height})
        for cat, x, y, w, h in boxes:
            ann_id += 1
            data["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": cat,
                                        "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, data in by_split.items():
        (root / "annotations" / f"{split}.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def tiny_coco(tmp_path) -> Path:
    return write_tiny_coco(tmp_path / "coco")
