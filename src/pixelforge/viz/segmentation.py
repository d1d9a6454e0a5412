"""Figures of segmentation results: image/truth/prediction galleries and the pixel confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.runtime.mask_files import overlay, palette
from pixelforge.viz.grid import plot_gallery
from pixelforge.viz.plots import plot_matrix  # sets matplotlib's headless backend


def plot_triplets(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]], classes: list[str], path: Path,
                  ignore_index: int | None = 255) -> Path:
    """One row per image: the image, the true mask over it, the predicted mask over it; a legend of class colours.

    Each row is (RGB uint8 image, true mask, predicted mask, title). Drawn by the Pillow gallery (viz/grid.py):
    matplotlib's subplots and tight layout took ~2 s of a small segmentation run's report for these 3-column rows.
    """
    k = len(classes)
    images, titles = [], []
    for image, truth, pred, title in rows:
        images += [image, overlay(image, truth, k, ignore_index=ignore_index),
                   overlay(image, pred, k, ignore_index=ignore_index)]
        titles += [title, "truth", "prediction"]
    colors = palette(k)
    return plot_gallery(images, titles, path, columns=3, legend=[(name, tuple(colors[i])) for i, name in enumerate(classes)],
                        cell=250)


def plot_pixel_confusion(matrix, classes: list[str], path: Path) -> Path:
    """The pixel confusion matrix as row shares in percent (pixel counts are too large to print in cells)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    return plot_matrix(shares, [[f"{100 * v:.1f}" for v in row] for row in shares], classes, path,
                       "pixel confusion matrix (% of each true class)", max_annotated=25)
