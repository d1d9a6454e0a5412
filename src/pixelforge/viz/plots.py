"""PNG figures a person looks at: confusion matrix, training curves, a gallery of images with labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    normalized = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 30:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                    color="white" if normalized[i, j] > 0.5 else "black")
    ax.set_title("confusion matrix (counts; colour = row share)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# Training curves per task: one panel a tuple (title, [(metrics.csv column, legend label), ...]).
CLASSIFY_PANELS = (("loss", [("train_loss", "train"), ("val_loss", "val")]),
                   ("accuracy", [("train_acc", "train"), ("val_acc", "val")]))


def plot_curves(rows: list[dict], path: Path, panels=CLASSIFY_PANELS, ylim_last: tuple | None = None) -> Path:
    """One line per (column, label) of each panel against the epoch; columns a run lacks are skipped."""
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    for ax, (title, lines) in zip(np.atleast_1d(axes), panels):
        for key, label in lines:
            if any(r.get(key) is not None for r in rows):
                ax.plot(epochs, [r.get(key) for r in rows], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    if ylim_last:
        np.atleast_1d(axes)[-1].set_ylim(*ylim_last)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gallery(images: list[np.ndarray], titles: list[str], path: Path, columns: int = 6,
                 colors: list[str] | None = None) -> Path:
    """Images (HWC uint8) in a grid, each with a title (e.g. "true: ant / pred: bee 0.93")."""
    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, image, title) in enumerate(zip(axes.flat, images, titles)):
        ax.imshow(image)
        ax.set_title(title, fontsize=8, color=(colors[k] if colors else "black"))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_lr_find(lrs: list[float], losses: list[float], suggestion: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title("learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
