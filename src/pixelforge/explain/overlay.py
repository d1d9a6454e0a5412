"""The explanation PNG: the image the model saw | the heat map | the heat map over the image, with the labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def blend(image: np.ndarray, heatmap: np.ndarray, image_weight: float = 0.55) -> np.ndarray:
    """The heat map in OpenCV's jet colours over an HWC uint8 image, as HWC uint8: pytorch-grad-cam's
    `show_cam_on_image`, written out with OpenCV because importing pytorch_grad_cam costs about a second of every
    training run's report (explain/cam.py); tests/explain check that the pixels are the same."""
    import cv2

    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * np.clip(heatmap, 0, 1)), cv2.COLORMAP_JET),
                           cv2.COLOR_BGR2RGB)
    blended = (1 - image_weight) * (np.float32(colours) / 255) + image_weight * (image.astype(np.float32) / 255)
    return np.uint8(255 * (blended / np.max(blended)))


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
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04).set_label("relative importance", fontsize=8)
    if scores:  # which way each area should go, or the numbers beside "random" cannot be read
        axes[1].set_xlabel(f"deletion AUC {scores['deletion_auc']:.3f} (random {scores['random_deletion_auc']:.3f}; "
                           f"lower is better)\ninsertion AUC {scores['insertion_auc']:.3f} (random "
                           f"{scores['random_insertion_auc']:.3f}; higher is better)", fontsize=8)
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
