"""Training data for compression: random crops of any folder of images (class subfolders or not; labels unused),
split by its train/, val/ and test/ folders where it has them.

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
from pixelforge.data.sources import split_folder
from pixelforge.errors import PixelforgeError


def split_images(folder: str, val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """The images under `folder` as train, val and test lists.

    A folder with `train/`, `val/` (`valid/`, `validation/`) and `test/` folders keeps them: training reads train/
    only, validation val/ (without one, a seeded `val_fraction` of train/, as classify carves it), and test/ is
    never trained on (evaluate's default split). Without such folders (any other layout, class folders too) the
    images are shuffled with `seed` and `val_fraction` of them validate; test is empty. Images beside the split
    folders get that seeded split among themselves, as denoise's do.

    Example:
        >>> split_images("photos", 0.1, 0)["val"]  # doctest: +SKIP
        [PosixPath('photos/coffee.png')]
    """
    root = Path(folder)
    if not root.is_dir():
        raise PixelforgeError(f"{folder}: not a folder of images (--task compress reads any folder of photos)")
    files = list_images(root)
    given = {path: split_folder(path, root) for path in files}
    if not any(given.values()):
        if len(files) < 2:
            raise PixelforgeError(f"{folder}: need at least 2 images (found {len(files)})")
        return {**_seeded(files, val_fraction, seed), "test": []}
    splits = {name: [path for path in files if given[path] == name] for name in ("train", "val", "test")}
    loose = [path for path in files if given[path] is None]
    if loose:
        for name, paths in _seeded(loose, val_fraction, seed).items():
            splits[name] = sorted(splits[name] + paths)
    if not splits["val"] and len(splits["train"]) > 1:  # given splits without val: carved from train, as classify's
        splits.update(_seeded(splits["train"], val_fraction, seed))
    if not splits["train"] or not splits["val"]:
        raise PixelforgeError(f"{folder}: its split folders give {len(splits['train'])} train and {len(splits['val'])} "
                              f"val images; compression trains on train/ and validates on val/: add images to train/ "
                              f"(or use no split folders, for a seeded split by --val-fraction)")
    return splits


def _seeded(files: list[Path], val_fraction: float, seed: int) -> dict[str, list[Path]]:
    """`files` shuffled with `seed`; the first `val_fraction` (at least one) validate. The flat folder's split since
    the first compression runs: the documented recipes' numbers depend on it, so it must not change."""
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
