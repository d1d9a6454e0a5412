"""A torch Dataset over `Sample`s that decodes each image once and keeps the resized uint8 pixels in RAM.

Decoding a JPEG and resizing it costs far more than the augmentations that follow, and it gives the same pixels
every epoch; so `ImageDataset.preload()` decodes everything once (in threads, with JPEG draft mode) into a list of
uint8 tensors whose shorter side is the decode size, within a RAM budget. Files that cannot be read are found
then, reported by name, and dropped, so no epoch ever dies on a corrupt file.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pixelforge.data import prefetch
from pixelforge.data.images import ImageReadError, decode_array
from pixelforge.data.sources import Sample

log = logging.getLogger("pixelforge")


def decode_resized(path: Path, short_side: int) -> torch.Tensor:
    """Decode `path` to an RGB uint8 CHW tensor whose shorter side is `short_side`."""
    return _chw(decode_array(path, short_side))


def _chw(pixels) -> torch.Tensor:
    """An HWC uint8 array (`decode_array`'s) as the CHW tensor the transforms take."""
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


class ImageDataset(Dataset):
    """Samples -> (normalized image tensor, class index), decoding each file once when preloaded.

    Example:
        >>> ds = ImageDataset(samples, {"ants": 0, "bees": 1}, short_side=256, transform=None)  # doctest: +SKIP
        >>> bad = ds.preload(workers=2)  # doctest: +SKIP
    """

    def __init__(self, samples: list[Sample], class_to_idx: dict[str, int], short_side: int, transform=None):
        self.samples = list(samples)
        self.class_to_idx = class_to_idx
        self.short_side = short_side
        self.transform = transform
        self.cache: list[torch.Tensor] | None = None
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> list[int]:
        return [self.class_to_idx[s.label] for s in self.samples]

    def preload(self, workers: int = 2, ram_budget_gb: float = 4.0, progress=None, warn: bool = True) -> list[str]:
        """Decode every image once; drop unreadable ones and return their error messages (each also logged as a
        warning unless `warn` is False: a caller that reports them itself says it once).

        When the estimated cache would exceed `ram_budget_gb`, images are only validated and are decoded again
        each time they are read.
        """
        decoded: list[torch.Tensor | None] = [None] * len(self.samples)
        errors: list[str] = []
        total_bytes = 0
        keep_pixels = True

        def work(index: int):
            path = self.samples[index].path
            try:
                pixels = prefetch.take(path, self.short_side)  # decoded while the process started (prefetch.py)
                if pixels is None:
                    pixels = decode_array(path, self.short_side)
                return index, _chw(pixels), None
            except ImageReadError as exc:
                return index, None, str(exc)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for index, tensor, error in pool.map(work, range(len(self.samples))):
                if error:
                    errors.append(error)
                    if warn:
                        log.warning("skipping unreadable image: %s", error)
                elif keep_pixels:
                    decoded[index] = tensor
                    total_bytes += tensor.numel()
                    if total_bytes > ram_budget_gb * 1e9:
                        keep_pixels = False
                        log.info("image cache would exceed %.1f GB; decoding on the fly instead", ram_budget_gb)
                if progress is not None:
                    progress()
        bad = {i for i, t in enumerate(decoded) if t is None} if keep_pixels else set()
        bad |= {i for i, s in enumerate(self.samples) if any(err.startswith(str(s.path)) for err in errors)}
        self.samples = [s for i, s in enumerate(self.samples) if i not in bad]
        self.cache = [t for i, t in enumerate(decoded) if i not in bad] if keep_pixels else None
        self.unreadable += errors
        return errors

    def pixels(self, index: int) -> torch.Tensor:
        if self.cache is not None:
            return self.cache[index]
        return decode_resized(self.samples[index].path, self.short_side)

    def __getitem__(self, index: int):
        try:
            image = self.pixels(index)
        except ImageReadError as exc:
            # Only reachable without a cache: a file changed or broke after preload. Keep the epoch alive.
            log.warning("skipping unreadable image: %s", exc)
            return self[(index + 1) % len(self)]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.class_to_idx[self.samples[index].label]
