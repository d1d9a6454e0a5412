"""Captioning figures: a gallery of images with the generated and the true captions, and attention strips (each
generated word above the image with that word's attention weights upsampled over it, Show-Attend-and-Tell style)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def upsampled_attention(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """Attention weights over a g x g grid as an HxW map in [0, 1] (bicubic, then divided by its maximum; no
    minimum subtracted, so attention spread evenly shows as even, not as contrast stretched out of noise)."""
    side = int(round(np.sqrt(alpha.size)))
    grid = np.asarray(alpha, np.float32).reshape(side, side)
    heat = np.clip(np.asarray(Image.fromarray(grid, mode="F").resize((width, height), Image.BICUBIC)), 0, None)
    return heat / max(float(heat.max()), 1e-8)


def _as_array(image) -> np.ndarray:
    return np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)


def attention_overlay(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The image with one word's attention over it: the jet colour map at half opacity, as matplotlib's
    `imshow(heat, cmap="jet", alpha=0.5, vmin=0, vmax=1)` over `imshow(image)` composed it."""
    heat = upsampled_attention(alpha, *pixels.shape[:2])
    colours = matplotlib.colormaps["jet"](heat)[..., :3] * 255
    return (0.5 * pixels[..., :3].astype(np.float32) + 0.5 * colours).round().clip(0, 255).astype(np.uint8)


def plot_attention_strips(rows: list[tuple], path: Path, max_words: int = 12) -> Path:
    """rows: (image, words, alphas [one per word, <end> last]); one strip per image: the image, then each word with
    its heat map (the last panel is <end>'s). Drawn by the Pillow gallery (viz/grid.py): matplotlib placed these
    panels in ~2.8 s a figure, more than the captioning model took to decode them."""
    from pixelforge.viz.grid import plot_gallery

    columns = 1 + min(max(len(a) for _, _, a in rows), max_words)
    panels, titles = [], []
    for image, words, alphas in rows:
        pixels = _as_array(image)
        labels = [*words, "<end>"][: len(alphas)]
        shown = [attention_overlay(pixels, alphas[k]) for k in range(min(len(alphas), columns - 1))]
        blank = np.full_like(pixels[..., :3], 255)  # a shorter caption's row keeps the columns aligned
        panels += [pixels, *shown] + [blank] * (columns - 1 - len(shown))
        titles += ["image", *labels[: len(shown)]] + [""] * (columns - 1 - len(shown))
    path.parent.mkdir(parents=True, exist_ok=True)
    return plot_gallery(panels, titles, path, columns=columns, cell=144)


def plot_caption_gallery(rows: list[tuple], path: Path, columns: int = 4) -> Path:
    """rows: (image, generated caption, true captions); each image with its generated caption (bold) and the
    first two true ones below it."""
    count = len(rows)
    fig, axes = plt.subplots((count + columns - 1) // columns, columns, figsize=(3.4 * columns, 4.6 * ((count + columns - 1) // columns)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, generated, truths) in zip(axes.flat, rows):
        ax.imshow(_as_array(image))
        wrapped = textwrap.fill(generated, 36)
        truth = "\n".join(textwrap.fill("true: " + t, 40) for t in truths[:2])
        ax.set_title(wrapped, fontsize=9, fontweight="bold", loc="left")
        ax.text(0, -0.04, truth, transform=ax.transAxes, fontsize=8, va="top", color="#444")
    fig.tight_layout(h_pad=4)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
