"""A torch Dataset of (image, mask) pairs that decodes each pair once and keeps the resized pixels in RAM.

Images stay at their bit depth in the cache (uint8, or uint16 for 16-bit data) and masks as uint8 class ids, both
resized once so the shorter side is `short_side` (masks nearest-neighbour). Each item then goes through the v2
transform as a (tv_tensors.Image, tv_tensors.Mask) pair, is scaled to [0, 1] by its bit depth and normalised with
the given mean/std. A 1-channel image stays 1-channel when `in_channels` is 1 (the model adapts its first conv);
mixed data is converted to `in_channels` (gray repeated to RGB, RGB to luminance).

Unreadable files are reported and dropped at preload, as in classification; a mask that disagrees with its image
(other size, class id outside the declared classes, colour instead of ids) raises, because training on it would
be silently wrong.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from pixelforge.data.images import ImageReadError
from pixelforge.data.masks.images import MaskFormatError, load_image_any, load_mask, match_channels
from pixelforge.data.masks.source import MaskSample
from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")


def _check_ids(mask: np.ndarray, sample: MaskSample, num_classes: int | None, ignore_index: int) -> None:
    if num_classes is None:
        return
    ids = np.unique(mask)
    bad = ids[((ids < 0) | (ids >= num_classes)) & (ids != ignore_index)]
    if bad.size:
        raise MaskFormatError(f"{sample.mask}: class id(s) {', '.join(map(str, bad[:5].tolist()))} outside 0.."
                              f"{num_classes - 1} (ignore {ignore_index}); fix the mask or the class list")


def decode_pair(sample: MaskSample, short_side: int | None, in_channels: int, num_classes: int | None = None,
                ignore_index: int = 255) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Read one pair into (Image uint8|uint16 [C,H,W], Mask uint8|int64 [H,W]) with shorter side `short_side`."""
    array = match_channels(load_image_any(sample.image), in_channels)
    if sample.mask is None:
        raise PixelforgeError(f"{sample.image}: has no mask; segmentation training needs one per image")
    mask = load_mask(sample.mask)
    if mask.shape != array.shape[:2]:
        raise MaskFormatError(f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {sample.image} "
                              f"is {array.shape[1]}x{array.shape[0]}; masks must have the image's size")
    _check_ids(mask, sample, num_classes, ignore_index)
    small = 0 <= ignore_index <= 255 and (mask.size == 0 or (mask.min() >= 0 and mask.max() <= 255))
    mask_t = tv_tensors.Mask(torch.from_numpy(mask.astype(np.uint8) if small else mask))
    image = torch.from_numpy(np.array(array.transpose(2, 0, 1), copy=True, order="C"))  # writable, contiguous
    if short_side and min(mask.shape) != short_side:
        if image.dtype == torch.uint16:  # resize in float so 16-bit values are interpolated, then stored as uint16
            image = F.resize(image.float(), [short_side], antialias=True).round().clamp(0, 65535).to(torch.uint16)
        else:
            image = F.resize(image, [short_side], antialias=True)
        mask_t = F.resize(mask_t, [short_side])  # a Mask is always resized nearest-neighbour
    return tv_tensors.Image(image), mask_t


class MaskDataset(Dataset):
    """MaskSamples -> (normalised float32 image [C,H,W], int64 mask [H,W]), decoding each pair once when preloaded.

    Args:
        samples: image/mask pairs (`MaskSource.split("train")`).
        transform: a v2 transform taking and returning (Image, Mask) (`train_mask_transform` / `eval_mask_transform`).
        mean, std: per-channel normalisation of [0, 1]-scaled pixels (`dataset_intensity_stats` for 16-bit data).
        in_channels: 1 or 3; images are converted to this many channels.
        short_side: decode size (shorter side in the cache); None keeps the files' own size.
        num_classes, ignore_index: when num_classes is given, masks with other ids raise at decode.

    Example:
        >>> ds = MaskDataset(src.split("train"), train_mask_transform(128), [0.5] * 3, [0.5] * 3, 3, short_side=128)  # doctest: +SKIP
        >>> image, mask = ds[0]  # doctest: +SKIP
    """

    def __init__(self, samples: list[MaskSample], transform=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 in_channels: int = 3, short_side: int | None = None, num_classes: int | None = None,
                 ignore_index: int = 255):
        if len(mean) != in_channels or len(std) != in_channels:
            raise PixelforgeError(f"normalisation has {len(mean)} mean / {len(std)} std values but the images have "
                                  f"{in_channels} channel(s); give one value per channel")
        self.samples = list(samples)
        self.transform = transform
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self.in_channels = in_channels
        self.short_side = short_side
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.cache: list[tuple[tv_tensors.Image, tv_tensors.Mask]] | None = None
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, index: int):
        return decode_pair(self.samples[index], self.short_side, self.in_channels, self.num_classes, self.ignore_index)

    def preload(self, workers: int = 2, ram_budget_gb: float = 4.0, progress=None) -> list[str]:
        """Decode every pair once; drop unreadable ones and return their error messages.

        Raises:
            PixelforgeError: a mask that does not fit its image (size, class ids, colour) — fix the data.
        """
        decoded: list = [None] * len(self.samples)
        errors: list[str] = []
        total_bytes, keep = 0, True

        def work(index: int):
            try:
                return index, self._decode(index), None
            except ImageReadError as exc:
                return index, None, str(exc)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for index, pair, error in pool.map(work, range(len(self.samples))):
                if error:
                    errors.append(error)
                    log.warning("skipping unreadable image/mask: %s", error)
                elif keep:
                    decoded[index] = pair
                    total_bytes += pair[0].numel() * pair[0].element_size() + pair[1].numel() * pair[1].element_size()
                    if total_bytes > ram_budget_gb * 1e9:
                        keep = False
                        log.info("image cache would exceed %.1f GB; decoding on the fly instead", ram_budget_gb)
                if progress is not None:
                    progress()
        bad = {i for i, s in enumerate(self.samples) if any(e.startswith((str(s.image), str(s.mask))) for e in errors)}
        self.samples = [s for i, s in enumerate(self.samples) if i not in bad]
        self.cache = [p for i, p in enumerate(decoded) if i not in bad] if keep else None
        self.unreadable += errors
        return errors

    def pixels(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        """The cached (or freshly decoded) pair before augmentation: uint8/uint16 image and uint8/int64 mask."""
        return self.cache[index] if self.cache is not None else self._decode(index)

    def full_mask(self, index: int) -> torch.Tensor:
        """The mask at the file's own resolution (int64 [H,W]), for scoring predictions at full resolution."""
        return torch.from_numpy(load_mask(self.samples[index].mask))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            image, mask = self.pixels(index)
        except ImageReadError as exc:
            # Only reachable without a cache: a file changed or broke after preload. Keep the epoch alive.
            log.warning("skipping unreadable image/mask: %s", exc)
            return self[(index + 1) % len(self)]
        if image.dtype == torch.uint16:
            # 16-bit is scaled before the transform: v2's geometry ops are defined on uint8 and float images.
            image = tv_tensors.Image(image.to(torch.float32) / 65535.0)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        image = image.as_subclass(torch.Tensor)
        image = image.to(torch.float32) / 255.0 if image.dtype == torch.uint8 else image.to(torch.float32)
        image = F.normalize(image, self.mean, self.std)
        return image, mask.as_subclass(torch.Tensor).to(torch.int64)
