"""Training data for compression: random crops of any folder of images (class subfolders or not; labels unused).

Each epoch draws `crops_per_image` random crops (with a random horizontal flip) from every training image; the
validation images give one centre crop each, so the validation loss compares epochs on the same pixels.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from pixelforge.data.images import ImageReadError, list_images, load_rgb
from pixelforge.errors import PixelforgeError


def split_images(folder: str, val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """The images under `folder`, shuffled with `seed` and split into train and val."""
    root = Path(folder)
    if not root.is_dir():
        raise PixelforgeError(f"{folder}: not a folder of images (--task compress reads any folder of photos)")
    files = list_images(root)
    if len(files) < 2:
        raise PixelforgeError(f"{folder}: need at least 2 images (found {len(files)})")
    order = list(files)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(order) * val_fraction))
    return {"train": sorted(order[n_val:]), "val": sorted(order[:n_val])}


class CropDataset(Dataset):
    """Crops of `size` px as float tensors in [0, 1]. The images are decoded once, up front, so a file that cannot
    be decoded is skipped and named in `unreadable` (as every task's training does) instead of stopping an epoch."""

    def __init__(self, files: list[Path], size: int, crops_per_image: int, train: bool, progress=None):
        self.size, self.repeats, self.train = size, crops_per_image if train else 1, train
        crop = v2.RandomCrop(size) if train else v2.CenterCrop(size)  # images smaller than `size` are scaled up
        steps = [v2.ToImage(), crop] + ([v2.RandomHorizontalFlip()] if train else [])
        self.transform = v2.Compose(steps + [v2.ToDtype(torch.float32, scale=True)])
        self.files, self.images, self.unreadable = [], [], []
        for path in files:
            try:
                image = load_rgb(path)
            except ImageReadError as exc:
                self.unreadable.append(str(exc))
                continue
            # An image smaller than a crop is scaled up to fit, in training as in validation: reflect padding
            # fails once the missing part is larger than the image, e.g. 12 px under 128 px crops.
            if min(image.size) < size:
                scale = size / min(image.size)
                image = image.resize((round(image.width * scale + 0.5), round(image.height * scale + 0.5)))
            self.files.append(path)
            self.images.append(image)
            if progress is not None:
                progress(1)

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(self.images[index // self.repeats])
