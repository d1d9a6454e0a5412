"""The explanation PNG: the image the model saw | the heat map | the heat map over the image, with the labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def blend(image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """The heat map (jet colours) over an HWC uint8 image, as HWC uint8 (pytorch-grad-cam's show_cam_on_image)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(image.astype(np.float32) / 255, np.clip(heatmap, 0, 1), use_rgb=True,
                             image_weight=image_weight)


def save_explanation(image: np.ndarray, heatmap: np.ndarray, path: Path, method: str, predicted: str, score: float,
                     explained: str, true_label: str | None = None, scores: dict | None = None) -> Path:
    """Write the three-panel PNG for one image; `scores` (deletion/insertion areas) go under the heat map.

    Example:
        >>> save_explanation(np.zeros((64, 64, 3), np.uint8), np.random.rand(64, 64), Path("x.png"),
        ...                  "gradcam", "cat", 0.93, "cat")  # doctest: +SKIP
    """
    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.9))
    axes[0].imshow(image)
    axes[0].set_title(f"image (true: {true_label})" if true_label else "image", fontsize=10)
    shown = axes[1].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title(f"{method} heat map", fontsize=10)
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    if scores:
        axes[1].set_xlabel(f"deletion {scores['deletion_auc']:.3f} (random {scores['random_deletion_auc']:.3f})\n"
                           f"insertion {scores['insertion_auc']:.3f} (random {scores['random_insertion_auc']:.3f})",
                           fontsize=8)
    axes[2].imshow(blend(image, heatmap))
    wrong = true_label is not None and true_label != predicted
    axes[2].set_title(f"predicted: {predicted} ({score:.2f})\nexplained: {explained}", fontsize=10,
                      color="crimson" if wrong else "black")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
