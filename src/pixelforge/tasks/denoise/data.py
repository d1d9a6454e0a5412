"""Denoising data: which images train, validate and test, and the (noisy, clean) pairs the model learns from.

Layouts of `--data DIR` (images are found recursively, so class folders are fine and ignored):

    DIR/**/*.jpg                        clean images: a seeded split by `val_fraction` / `test_fraction`
    DIR/{train,val,test}/**/*.jpg       clean images with given splits
    DIR/noisy/**  +  DIR/clean/**       real noise: pairs matched by their path below noisy/ and clean/; `--noise`
                                        is not used (optionally each with train/val/test inside, as above)

Training draws `crops_per_image` random `img_size` crops from every training image per epoch, each flipped or
rotated at random and given fresh noise; validation uses one fixed centre crop per image with noise fixed by the
run's seed and the file's name. Evaluation (evaluate.py) scores whole images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelforge.data.images import ImageReadError, list_images
from pixelforge.data.masks.images import load_image_any, match_channels
from pixelforge.data.noise import NoiseModel, rng_for, to_unit
from pixelforge.data.sources import split_folder
from pixelforge.engine.samplers import EpochSampler
from pixelforge.errors import PixelforgeError

VAL_CROP = 128


@dataclass
class Item:
    clean: Path
    noisy: Path | None = None  # paired data only
    split: str | None = None


@dataclass
class DenoiseSource:
    items: list[Item]
    origin: str
    paired: bool
    unreadable: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Item]:
        return [item for item in self.items if item.split == name]

    @property
    def has_splits(self) -> bool:
        return any(item.split for item in self.items)


def read_denoise_data(data: str | Path) -> DenoiseSource:
    """The items of `data` (a folder or one image file), split where the folder says so."""
    root = Path(data).expanduser()
    if not root.exists():
        raise PixelforgeError(f"{root}: no such file or folder; give a folder of clean images, or noisy/ + clean/")
    if root.is_file():
        return DenoiseSource([Item(root)], str(root), False)
    noisy, clean = root / "noisy", root / "clean"
    paired = noisy.is_dir() and clean.is_dir()
    base = clean if paired else root
    items = []
    for path in list_images(base):
        rel = path.relative_to(base)
        split = split_folder(path, base)
        partner = None
        if paired:
            partner = _partner(noisy, rel)
            if partner is None:
                raise PixelforgeError(f"{path}: no noisy image with the same path below {noisy}; pair every clean image")
        items.append(Item(path, partner, split))
    if not items:
        raise PixelforgeError(f"{base}: no images found (.jpg, .png, .bmp, .tif, .webp)")
    return DenoiseSource(items, str(root), paired)


def _partner(noisy_root: Path, rel: Path) -> Path | None:
    exact = noisy_root / rel
    if exact.is_file():
        return exact
    same_stem = sorted(p for p in (noisy_root / rel.parent).glob(rel.stem + ".*") if p.is_file())
    return same_stem[0] if same_stem else None


def split_source(source: DenoiseSource, val_fraction: float, test_fraction: float, seed: int) -> DenoiseSource:
    """Give items without a split one, seeded (files sorted first, so the split depends only on the names)."""
    unsplit = [i for i, item in enumerate(source.items) if item.split is None]
    if not unsplit:
        return source
    order = np.random.default_rng(seed).permutation(len(unsplit))
    n_val = max(1, round(len(unsplit) * val_fraction))
    n_test = round(len(unsplit) * test_fraction)
    items = list(source.items)
    for rank, k in enumerate(order):
        index = unsplit[k]
        split = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
        items[index] = Item(items[index].clean, items[index].noisy, split)
    return DenoiseSource(items, source.origin, source.paired, source.unreadable)


def load_pair(item: Item, channels: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(clean, noisy or None) as HxWxC uint8/uint16 with `channels` channels; a size mismatch is a one-line error."""
    clean = match_channels(load_image_any(item.clean), channels)
    if item.noisy is None:
        return clean, None
    noisy = match_channels(load_image_any(item.noisy), channels)
    if noisy.shape != clean.shape:
        raise PixelforgeError(f"{item.noisy}: size {noisy.shape[1]}x{noisy.shape[0]} differs from {item.clean} "
                              f"({clean.shape[1]}x{clean.shape[0]})")
    return clean, noisy


def preload(items: list[Item], channels: int, progress=None) -> tuple[list[tuple], list[str]]:
    """Decode every item once (training reads them many times); unreadable files are listed, not fatal."""
    loaded, unreadable = [], []
    for item in items:
        try:
            loaded.append((item, *load_pair(item, channels)))
        except ImageReadError as exc:
            unreadable.append(str(exc))
        if progress is not None:
            progress(1)
    return loaded, unreadable


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32))


def _fit(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad an image smaller than `size` on a side, so every crop is size x size."""
    pad_h, pad_w = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect") if pad_h or pad_w else image


class EpochIndices(EpochSampler):
    """The training order as (epoch, index) pairs, for `RandomCrops` to draw each crop from."""

    def __iter__(self):
        return ((self.epoch, index) for index in self._indices())


class RandomCrops(Dataset):
    """`crops_per_image` random crops of each image per epoch, randomly flipped/rotated, with fresh noise.

    Each draw's generator comes from (seed, index, epoch), the epoch from `EpochIndices`, so a run is repeatable with
    the same seed while every epoch sees new crops and new noise, and a resumed run draws what an uninterrupted one
    does (a count of the draws made, kept in the dataset, started again from 0 when a run resumed).
    """

    def __init__(self, loaded: list[tuple], noise: NoiseModel, size: int, crops_per_image: int, seed: int):
        self.loaded, self.noise, self.size, self.per_image, self.seed = loaded, noise, size, crops_per_image, seed

    def __len__(self) -> int:
        return len(self.loaded) * self.per_image

    def __getitem__(self, key: tuple[int, int] | int):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, index, epoch])
        _, clean, noisy = self.loaded[index // self.per_image]
        stack = clean if noisy is None else np.concatenate([clean, noisy], axis=-1)
        stack = _fit(stack, self.size)
        top = int(rng.integers(stack.shape[0] - self.size + 1))
        left = int(rng.integers(stack.shape[1] - self.size + 1))
        crop = np.rot90(stack[top:top + self.size, left:left + self.size], int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = to_unit(crop)
        c = clean.shape[-1]
        clean_crop = crop[..., :c]
        noisy_crop = crop[..., c:] if noisy is not None else self.noise.apply(clean_crop, rng)
        if noisy is None:  # what a saved noisy image holds: rounded to the image's bit depth
            top_value = 65535.0 if clean.dtype == np.uint16 else 255.0
            noisy_crop = np.round(noisy_crop * top_value) / top_value
        return _tensor(noisy_crop), _tensor(clean_crop)


class CentreCrops(Dataset):
    """One fixed centre crop per image with fixed noise: validation comparable across epochs and runs."""

    def __init__(self, loaded: list[tuple], noise: NoiseModel, size: int, seed: int):
        self.samples = []
        for item, clean, noisy in loaded:
            clean_crop, noisy_crop = (_centre(_fit(a, size), size) if a is not None else None for a in (clean, noisy))
            clean_unit = to_unit(clean_crop)
            if noisy_crop is None:
                top_value = 65535.0 if clean.dtype == np.uint16 else 255.0
                noisy_unit = np.round(noise.apply(clean_unit, rng_for(seed, item.clean.name)) * top_value) / top_value
            else:
                noisy_unit = to_unit(noisy_crop)
            self.samples.append((_tensor(noisy_unit), _tensor(clean_unit)))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.samples[index]


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]
