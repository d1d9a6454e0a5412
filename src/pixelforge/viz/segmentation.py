"""Figures of segmentation results: image/truth/prediction galleries and the pixel confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pixelforge.deploy.runtime.mask_files import overlay, palette  # noqa: E402
from pixelforge.viz.plots import plot_matrix  # noqa: E402


def plot_triplets(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]], classes: list[str], path: Path,
                  ignore_index: int | None = 255) -> Path:
    """One row per image: the image, the true mask over it, the predicted mask over it; a legend of class colours.

    Each row is (RGB uint8 image, true mask, predicted mask, title).
    """
    k = len(classes)
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.6 * len(rows) + 0.6), squeeze=False)
    for (image, truth, pred, title), (a, b, c) in zip(rows, axes):
        a.imshow(image)
        a.set_title(title, fontsize=8)
        b.imshow(overlay(image, truth, k, ignore_index=ignore_index))
        b.set_title("truth", fontsize=8)
        c.imshow(overlay(image, pred, k, ignore_index=ignore_index))
        c.set_title("prediction", fontsize=8)
        for ax in (a, b, c):
            ax.axis("off")
    colors = palette(k)
    handles = [matplotlib.patches.Patch(color=colors[i] / 255, label=name) for i, name in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(k, 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if len(rows) < 4 else 0.03, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_pixel_confusion(matrix, classes: list[str], path: Path) -> Path:
    """The pixel confusion matrix as row shares in percent (pixel counts are too large to print in cells)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    return plot_matrix(shares, [[f"{100 * v:.1f}" for v in row] for row in shares], classes, path,
                       "pixel confusion matrix (% of each true class)", max_annotated=25)
