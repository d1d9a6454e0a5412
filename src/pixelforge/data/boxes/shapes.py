"""The built-in detection / instance set: coloured shapes on noisy backgrounds, with exact boxes and masks.

360 images (240 train / 60 val / 60 test) of 128-256 px, each with 1-5 objects of the four classification shape
classes (circle, square, triangle, star) at scales from about 12 px to most of the image, some of them overlapping.
Boxes are not the geometry we asked for but the tight bounds of the pixels each object still shows after later
objects were drawn over it, so a box never claims hidden or missing pixels. A placement that would hide more than
half of an earlier object is redrawn elsewhere. The instance variant also stores each object's visible mask as a
COCO RLE `segmentation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixelforge.data.boxes.coco import write_coco_annotations
from pixelforge.data.boxes.source import BoxImage
from pixelforge.data.shape_drawing import SHAPE_CLASSES, draw_shape

SPLITS = (("train", 240), ("val", 60), ("test", 60))
CATEGORIES = {i + 1: name for i, name in enumerate(SHAPE_CLASSES)}
_MIN_VISIBLE = 0.5  # an object must keep at least this fraction of its pixels visible


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    corners = rng.integers(0, 256, (2, 3)).astype(np.float32)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    if rng.random() < 0.5:
        ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return corners[0] + (corners[1] - corners[0]) * ramp + np.zeros((height, width, 1), np.float32)


def _scene(rng: np.random.Generator, noise_bank: np.ndarray):
    """One image and its objects as (class index, visible mask)."""
    width, height = (int(v) for v in rng.integers(128, 257, 2))
    canvas = _background(rng, width, height)
    owner = np.full((height, width), -1, np.int16)  # which object each pixel shows
    placed: list[tuple[int, int]] = []  # (class index, full area)
    visible = np.zeros(5, np.int64)  # pixels each placed object still shows
    for _ in range(int(rng.integers(1, 6))):
        for _attempt in range(8):
            kind = int(rng.integers(len(SHAPE_CLASSES)))
            # Log-uniform radius: as many small objects as large ones.
            r = float(np.exp(rng.uniform(np.log(6), np.log(0.42 * min(width, height)))))
            cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
            angle = float(rng.uniform(0, 2 * np.pi))
            # Draw into the shape's own window only: the whole canvas per attempt would cost 10x more.
            x0, y0 = max(int(cx - r) - 1, 0), max(int(cy - r) - 1, 0)
            x1, y1 = min(int(cx + r) + 2, width), min(int(cy + r) + 2, height)
            stencil = Image.new("L", (x1 - x0, y1 - y0))
            draw_shape(ImageDraw.Draw(stencil), SHAPE_CLASSES[kind], cx - x0, cy - y0, r, angle, 255)
            mask = np.asarray(stencil) > 0
            window = (slice(y0, y1), slice(x0, x1))
            hidden = np.bincount(owner[window][mask] + 1, minlength=6)[1:]
            if all(visible[j] - hidden[j] >= _MIN_VISIBLE * placed[j][1] for j in range(len(placed))):
                break
        else:
            continue
        region = canvas[window]
        colour = rng.integers(0, 256, 3).astype(np.float32)
        under = region[mask].mean(0)
        if np.abs(colour - under).sum() < 180:  # too close to what is under it: shift every channel half-way round
            colour = (under + 128) % 256
        region[mask] = colour
        owner[window][mask] = len(placed)
        visible -= hidden
        visible[len(placed)] = int(mask.sum())
        placed.append((kind, int(mask.sum())))
    # Sensor-like noise cut from one shared bank at a random offset: drawing fresh normals per image costs more
    # than everything else here together.
    oy, ox = rng.integers(0, noise_bank.shape[0] - 256, 2)
    canvas += noise_bank[oy:oy + height, ox:ox + width] * rng.uniform(4, 16)
    pixels = np.clip(canvas, 0, 255).astype(np.uint8)
    return pixels, [(kind, owner == j) for j, (kind, _) in enumerate(placed)]


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _write(root: Path, seed: int, with_masks: bool) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    noise_bank = rng.standard_normal((768, 768, 3), dtype=np.float32)
    images: list[BoxImage] = []
    index = 0
    for split, count in SPLITS:
        folder = root / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            index += 1
            pixels, objects = _scene(rng, noise_bank)
            path = folder / f"{index:04d}.png"
            Image.fromarray(pixels).save(path, compress_level=1)
            boxes, segmentations = [], []
            for _kind, visible in objects:
                ys, xs = np.nonzero(visible)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])  # pixel edges: a 1-px object is 1 wide
                # RLE of the visible pixels, not a polygon: pycocotools rasterises polygons a pixel or two
                # differently from PIL's drawing, and a covered shape is no polygon any more.
                segmentations.append(_rle(visible))
            images.append(BoxImage(
                path, pixels.shape[1], pixels.shape[0], np.array(boxes, np.float32).reshape(-1, 4),
                np.array([kind + 1 for kind, _ in objects], np.int64), np.zeros(len(objects), bool), index, split,
                segmentations if with_masks else None))
    write_coco_annotations(images, CATEGORIES, root)
    return root


def write_shapes_detect(root: Path, seed: int = 0) -> Path:
    """Write the built-in detection set (COCO layout) to `root`; the same seed gives the same files.

    Example:
        >>> from pixelforge.data.boxes.source import read_boxes
        >>> import tempfile; root = write_shapes_detect(Path(tempfile.mkdtemp()), seed=0)  # doctest: +SKIP
        >>> len(read_boxes(root).split("train"))  # doctest: +SKIP
        240
    """
    return _write(root, seed, with_masks=False)


def write_shapes_instance(root: Path, seed: int = 0) -> Path:
    """Write the built-in instance set: the detection set plus each object's visible mask as `segmentation`."""
    return _write(root, seed, with_masks=True)
