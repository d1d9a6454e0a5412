"""The real images of a GAN run: any class-folder dataset (or built-in `digits`/`shapes`), or for an unconditional
GAN a plain folder of images, decoded once into one tensor in [-1, 1] at the run's square size, grey when every
image is grey (the generator then makes 1 channel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pixelforge.data.images import ImageReadError, list_images, load_rgb
from pixelforge.data.sources import DataSource, Sample, refuse_empty_class_folders, resolve_data
from pixelforge.errors import PixelforgeError

FLAT_CLASS = "images"  # the one class of a folder without class subfolders (the same name whatever the folder)


@dataclass
class RealImages:
    images: torch.Tensor  # float32 [N, C, S, S] in [-1, 1]
    labels: torch.Tensor  # int64 [N]
    unreadable: list[str] = field(default_factory=list)  # one line per file that could not be decoded (skipped)

    def __len__(self) -> int:
        return len(self.labels)

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(image, label) items, the dataset the engine's loaders read."""
        return list(zip(self.images, self.labels))


def read_source(data: str, conditional: bool = False) -> DataSource:
    """The dataset; a folder with its images directly in it (how most GAN datasets come: a folder of faces) is one
    class for an unconditional GAN, while a conditional one needs the class subfolders it learns."""
    try:
        source = resolve_data(data)
    except PixelforgeError:
        folder = Path(str(data)).expanduser()
        files = list_images(folder) if folder.is_dir() else []
        if not files:
            raise
        if conditional:
            raise PixelforgeError(f"{folder}: --conditional learns classes from subfolders (DIR/<class>/...), and "
                                  "this folder holds its images directly; drop --conditional to learn them all as one")
        return DataSource([Sample(path, FLAT_CLASS) for path in files], [FLAT_CLASS], str(folder))
    if len(source.classes) < 1:
        raise PixelforgeError(f"{source.origin}: no class folders found")
    if conditional:  # the classes are what it learns: one the user meant must not be silently missing
        refuse_empty_class_folders(source)
    return source


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def grey(samples: list[Sample]) -> bool:
    """True when the images are greyscale (PIL modes 1, L, LA, I, I;16...): judged on the first 32 whose header
    reads (a broken file is left to `decode`, which skips it and says so)."""
    modes = []
    for sample in samples:
        try:
            with Image.open(sample.path) as img:
                modes.append(img.mode)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        if len(modes) == 32:
            break
    return bool(modes) and all(mode in GREY_MODES for mode in modes)


def decode(samples: list[Sample], classes: list[str], img_size: int, channels: int) -> RealImages:
    """Shorter side resized to `img_size` (bicubic), centre crop, scaled to [-1, 1]. Files are read as classification
    reads them (`load_rgb`: upright by EXIF, alpha on white, 16-bit rescaled, not clipped to white); one that cannot
    be decoded is skipped and named in `unreadable`."""
    from torchvision.transforms.v2 import functional as TF

    index = {c: i for i, c in enumerate(classes)}
    images, kept, unreadable = [], [], []
    for sample in samples:
        try:
            img = load_rgb(sample.path)
        except ImageReadError as exc:
            unreadable.append(str(exc))
            continue
        img = img.convert("L") if channels == 1 else img
        x = torch.from_numpy(np.asarray(img).copy()).reshape(img.height, img.width, channels).permute(2, 0, 1)
        x = TF.center_crop(TF.resize(x, [img_size], interpolation=TF.InterpolationMode.BICUBIC, antialias=True),
                           [img_size, img_size])
        images.append(x)
        kept.append(sample)
    if not images:
        raise PixelforgeError(f"no readable images: {unreadable[0]}" if unreadable else "no images to decode")
    stacked = torch.stack(images).float() / 127.5 - 1.0
    # -1: an image of another dataset (`evaluate --data`) whose class the run does not know; only training reads the
    # labels, and its images are the run's own.
    return RealImages(stacked, torch.tensor([index.get(s.label, -1) for s in kept], dtype=torch.long), unreadable)


def training_samples(source: DataSource) -> list[Sample]:
    """The train split when the data has splits, else every image."""
    return source.split("train") if source.has_splits else list(source.samples)


def reference_samples(source: DataSource, n: int, seed: int) -> list[Sample]:
    """Up to `n` real images the per-epoch FID compares with: the val split when there is one, else training images."""
    pool = source.split("val") if source.has_splits and source.split("val") else training_samples(source)
    order = np.random.default_rng(seed).permutation(len(pool))[:n]
    return [pool[i] for i in sorted(order)]


def disjoint_real_sets(source: DataSource, n: int, seed: int,
                       unreadable: list[str] = ()) -> tuple[list[Sample], list[Sample]]:
    """Two disjoint sets of `n` real images from every split (n is capped at half the images): the reference the
    generated images are compared with, and the second set that gives the real-vs-real floor at the same n. Files
    named in `unreadable` (the run's skipped images, "PATH: why") are left out before drawing, so a few broken files
    in a small folder do not leave a set under 2."""
    pool = [s for s in source.samples if not any(line.startswith(f"{s.path}: ") for line in unreadable)]
    n = min(n, len(pool) // 2)
    if n < 2:
        raise PixelforgeError(f"{source.origin}: {len(pool)} images; FID needs two disjoint real sets of 2 or more")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[:n]], [pool[i] for i in order[n:2 * n]]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as uint8 RGB [N, 3, H, W], what FID feature extractors take (grey repeated to 3 channels)."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x
