"""Built-in datasets that need no download: `digits` (scikit-learn's handwritten digits) and `shapes` (procedural).

Both are written once as an ordinary train/val/test folder tree under the pixelforge cache
(`$PIXELFORGE_HOME`, default `~/.cache/pixelforge`), so they flow through exactly the same code as a user's folder.
`pixelforge data make NAME --out DIR` writes them anywhere.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pixelforge.data.shape_drawing import SHAPE_CLASSES, draw_shape  # noqa: F401  (re-exported)
from pixelforge.output_names import current_umask

BUILTIN_DATASETS = {"digits", "shapes"}
# The size a built-in set's pictures were drawn at before being written larger (digits: scikit-learn's 8x8, enlarged
# to 32 px bicubic by `_write_digits`); a generative model can draw at this size and enlarge the same way.
NATIVE_SIZES = {"digits": 8}
_VERSION = "v1"  # bump when a generator changes, so stale caches are not reused


def cache_root() -> Path:
    return Path(os.environ.get("PIXELFORGE_HOME", Path.home() / ".cache" / "pixelforge"))


# The annotation kinds each built-in set is written in: class folders, COCO boxes, index masks, COCO polygons.
# Each task reads one kind (`Task.data_kind`); the cache folder names predate the kinds and are kept.
KINDS = {"digits": ("classes",), "shapes": ("classes", "boxes", "masks", "instances", "captions")}
_CACHE_SUFFIX = {"classes": "", "boxes": "-detect", "masks": "-segment", "instances": "-instance", "captions": "-caption"}


def materialize(name: str, out: Path | None = None, seed: int = 0, kind: str = "classes") -> Path:
    """Write built-in dataset `name`, annotated as `kind`, to `out` (default: the cache) unless it is there; return
    the folder.

    `shapes` exists in every kind: class folders (`classes`), COCO boxes (`boxes`), index masks (`masks`), COCO
    polygons (`instances`).
    """
    from pixelforge.errors import PixelforgeError

    if kind not in KINDS.get(name, ()):
        raise PixelforgeError(f"built-in dataset {name!r} has no {kind!r} version; "
                              f"{name} comes as: {', '.join(KINDS.get(name, ()))}")
    target = Path(out) if out else cache_root() / "datasets" / f"{name}{_CACHE_SUFFIX[kind]}-{_VERSION}-seed{seed}"
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename, so an interrupted build never leaves a half dataset that looks complete.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        _writer(name, kind)(staging, seed)
        (staging / ".complete").touch()
        staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; `data make --out` is for sharing
        if (target / ".complete").exists():  # another process finished first and may be reading it: keep theirs
            return target
        if target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:  # another process renamed its copy in between
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _writer(name: str, kind: str):
    from pixelforge.data.boxes.shapes import write_shapes_detect, write_shapes_instance
    from pixelforge.data.captions.shapes import write_shapes_captions
    from pixelforge.data.masks.shapes import write_shapes_segment

    writers = {("digits", "classes"): _write_digits, ("shapes", "classes"): _write_shapes,
               ("shapes", "boxes"): write_shapes_detect, ("shapes", "instances"): write_shapes_instance,
               ("shapes", "masks"): write_shapes_segment,
               ("shapes", "captions"): write_shapes_captions}
    return writers[(name, kind)]


def _split_names(labels: np.ndarray, seed: int, val: float = 0.15, test: float = 0.15) -> list[str]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test_idx = train_test_split(idx, test_size=test, stratify=labels, random_state=seed)
    train_idx, val_idx = train_test_split(rest, test_size=val / (1 - test), stratify=labels[rest], random_state=seed)
    names = np.empty(len(labels), dtype=object)
    names[train_idx], names[val_idx], names[test_idx] = "train", "val", "test"
    return list(names)


def _write_digits(root: Path, seed: int) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    splits = _split_names(digits.target, seed)
    for i, (image, label, split) in enumerate(zip(digits.images, digits.target, splits)):
        # 0..16 ink levels -> 0..255; upscaled 4x with bicubic so CNN strides have something to work on.
        pixels = Image.fromarray((image * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.BICUBIC)
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels.save(folder / f"{i:04d}.png")




def _write_shapes(root: Path, seed: int, per_class: int = 150, size: int = 64) -> None:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(SHAPE_CLASSES)), per_class)
    splits = _split_names(labels, seed)
    for i, (label, split) in enumerate(zip(labels, splits)):
        background = rng.integers(0, 256, 3)
        noise = rng.normal(0, 12, (size, size, 3))
        canvas = np.clip(background + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(canvas)
        r = rng.uniform(size * 0.18, size * 0.38)
        cx, cy = rng.uniform(r, size - r, 2)
        color = tuple(int(c) for c in (255 - background + rng.integers(-40, 40, 3)).clip(0, 255))
        draw_shape(ImageDraw.Draw(img), SHAPE_CLASSES[label], cx, cy, r, rng.uniform(0, 2 * np.pi), color)
        folder = root / split / SHAPE_CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:04d}.png")
