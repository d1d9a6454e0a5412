"""The built-in semantic segmentation set: 1-4 coloured shapes on noisy backgrounds, with exact index masks.

Each shape is drawn twice with the same polygon, once in colour on the image and once with its class id on the mask,
so mask and pixels agree exactly (PIL's polygons are not anti-aliased). Later shapes occlude earlier ones on both.
The layout is the contract's: images/{train,val,test}/NNNN.png, masks/{split}/NNNN.png (palette PNGs) and
classes.json = ["background", "circle", "square", "triangle", "star"]. 300 images of 128 px take about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixelforge.data.shape_drawing import SHAPE_CLASSES, draw_shape
from pixelforge.data.masks.images import save_mask

SEGMENT_CLASSES = ["background", *SHAPE_CLASSES]


def _split_of(index: int, count: int) -> str:
    n_val = n_test = max(1, count // 6)  # 300 -> 200 / 50 / 50
    return "train" if index < count - n_val - n_test else "val" if index < count - n_test else "test"


def _colour_far_from(background: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    # A random colour at least ~100 away from the background, so every shape is visible but colour alone does not
    # tell the class (the model has to learn the outline).
    for _ in range(20):
        colour = rng.integers(0, 256, 3)
        if np.abs(colour - background).sum() > 150:
            break
    return tuple(int(c) for c in colour)


def draw_scene(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """One random image (RGB, size x size) and its class-index mask (0 = background, k = SEGMENT_CLASSES[k])."""
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 14, (size, size, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.integers(len(SHAPE_CLASSES)))
        r = rng.uniform(size * 0.09, size * 0.24)
        cx, cy = rng.uniform(r * 0.6, size - r * 0.6, 2)  # may run slightly off the edge, as real objects do
        angle = rng.uniform(0, 2 * np.pi)
        draw_shape(paint, SHAPE_CLASSES[kind], cx, cy, r, angle, _colour_far_from(background, rng))
        draw_shape(label, SHAPE_CLASSES[kind], cx, cy, r, angle, kind + 1)
    return image, np.asarray(mask)


def write_shapes_segment(root: Path, seed: int = 0, count: int = 300, size: int = 128) -> Path:
    """Write the built-in shapes segmentation set (`count` images, 2/3 train, 1/6 val, 1/6 test) under `root`.

    Deterministic for a given seed. Example:
        >>> import tempfile; root = write_shapes_segment(Path(tempfile.mkdtemp()), seed=0, count=6, size=64)
        >>> sorted(p.name for p in root.iterdir())
        ['classes.json', 'images', 'masks']
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for index in range(count):
        image, mask = draw_scene(rng, size)
        split = _split_of(index, count)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        image.save(root / "images" / split / f"{index:04d}.png")
        save_mask(mask, root / "masks" / split / f"{index:04d}.png")
    (root / "classes.json").write_text(json.dumps(SEGMENT_CLASSES))
    return root
