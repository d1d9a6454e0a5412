"""The picture a person looks at: the same crop of the noisy input, each classical result, ours and the clean
image, side by side, each titled with its PSNR (whole-image PSNR; the crop is where the image has most detail)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.runtime.mask_files import to_display
from pixelforge.viz.grid import plot_gallery

LABELS = {"noisy": "noisy", "nl_means": "NL-means", "wavelet": "wavelet", "ours": "ours"}


def detailed_crop(clean: np.ndarray, size: int) -> tuple[int, int]:
    """(top, left) of the size x size window, among a 3 x 3 grid, where the clean image varies most."""
    height, width = clean.shape[:2]
    size_h, size_w = min(size, height), min(size, width)
    grey = clean.astype(np.float32).mean(-1)
    spots = [(int(t), int(l)) for t in np.linspace(0, height - size_h, 3) for l in np.linspace(0, width - size_w, 3)]
    return max(spots, key=lambda s: float(grey[s[0]:s[0] + size_h, s[1]:s[1] + size_w].std()))


def plot_examples(gallery: list[tuple], methods: tuple, path: Path, size: int) -> Path:
    """`gallery`: (name, clean, {method: image}, {method: scores}) per image; one row each, clean last."""
    images, titles = [], []
    for name, clean, outputs, scores in gallery:
        top, left = detailed_crop(clean, size)
        cut = lambda a: to_display(a[top:top + size, left:left + size])  # noqa: E731
        for method in methods:
            images.append(cut(outputs[method]))
            titles.append(f"{LABELS.get(method, method)} {scores[method]['psnr']:.2f} dB")
        images.append(cut(clean))
        titles.append(f"clean: {name}")
    return plot_gallery(images, titles, path, columns=len(methods) + 1)
