"""Tiny segmentation fixtures written into tmp_path: a few 32-48 px images with index masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.masks.images import save_mask


def scene(seed: int, size: tuple[int, int] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image whose rectangle of class 1 and 2 are drawn in fixed colours, and its mask."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.int64)
    mask[5:20, 4:20], image[5:20, 4:20] = 1, (250, 0, 0)
    mask[22:35, 25:45], image[22:35, 25:45] = 2, (0, 250, 0)
    return image, mask


def write_pair(image_path: Path, mask_path: Path, seed: int, mask_fn=save_mask) -> None:
    image, mask = scene(seed)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    mask_fn(mask, mask_path)


@pytest.fixture
def split_layout(tmp_path) -> Path:
    """The built-in layout: images/{train,val}/ + masks/{train,val}/ + classes.json."""
    for split, n in (("train", 4), ("val", 2)):
        for i in range(n):
            write_pair(tmp_path / "images" / split / f"{split}{i}.png", tmp_path / "masks" / split / f"{split}{i}.png", i)
    (tmp_path / "classes.json").write_text('["background", "red", "green"]')
    return tmp_path
