"""`pixelforge data preview --task segment`: augmented training pairs with their masks drawn on top.

Each tile is one training sample after augmentation, so a mask that does not line up with its objects (a wrong
mask file, a transform applied to the image only) is visible at a glance. Ignored pixels are drawn white. 16-bit and
grayscale images are stretched per tile to their own range, only for display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import draw_segmentation_masks, make_grid

from pixelforge.data.masks.dataset import MaskDataset
from pixelforge.data.masks.images import mask_palette
from pixelforge.data.masks.source import read_masks
from pixelforge.data.masks.transforms import train_mask_transform


def overlay_mask(image: torch.Tensor, mask: torch.Tensor, num_classes: int, ignore_index: int = 255,
                 alpha: float = 0.45) -> torch.Tensor:
    """A [C,H,W] float image in [0, 1] (C = 1 or 3) with an int [H,W] mask blended on: uint8 [3,H,W]."""
    image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    lo, hi = image.min(), image.max()
    pixels = ((image - lo) / (hi - lo) if hi > lo else torch.zeros_like(image)) * 255
    palette = mask_palette()
    ids = list(range(1, num_classes)) + [ignore_index]  # background stays unpainted so the image shows through
    masks = torch.stack([mask == i for i in ids])
    colours = [palette[i % 256] for i in ids]
    return draw_segmentation_masks(pixels.to(torch.uint8), masks, alpha=alpha, colors=colours)


def _legend(classes: list[str], width: int) -> Image.Image:
    palette = mask_palette()
    rows = -(-len(classes) // 4)
    strip = Image.new("RGB", (width, 16 * rows + 4), "white")
    draw = ImageDraw.Draw(strip)
    column = max(1, width // 4)
    for index, name in enumerate(classes):
        x, y = (index % 4) * column + 4, (index // 4) * 16 + 3
        draw.rectangle([x, y, x + 10, y + 10], fill=palette[index] if index else (0, 0, 0), outline="gray")
        draw.text((x + 14, y), f"{index} {name}", fill="black")
    return strip


def write_mask_preview(path, out: str | Path, augment: str = "light", img_size: int = 128, count: int = 16,
                       seed: int = 0, ignore_index: int = 255) -> Path:
    """Write a PNG grid of `count` augmented training samples (preset `augment`) with masks overlaid.

    Example:
        >>> write_mask_preview("data/cells", "preview.png", augment="standard")  # doctest: +SKIP
    """
    source = read_masks(path, ignore_index=ignore_index)
    samples = source.split("train") or source.samples
    generator = torch.Generator().manual_seed(seed)
    chosen = [samples[int(i)] for i in torch.randperm(len(samples), generator=generator)[:count]]
    channels = source.channels
    dataset = MaskDataset(chosen, train_mask_transform(img_size, augment, ignore_index), [0.0] * channels,
                          [1.0] * channels, channels, short_side=img_size, ignore_index=ignore_index)
    dataset.preload()
    torch.manual_seed(seed)
    tiles = [overlay_mask(*dataset[i], len(source.classes), ignore_index) for i in range(len(dataset))]
    grid = make_grid(tiles, nrow=min(len(tiles), 6) or 1, padding=4, pad_value=255)
    picture = Image.fromarray(np.ascontiguousarray(grid.permute(1, 2, 0).numpy()))
    legend = _legend(source.classes, picture.width)
    canvas = Image.new("RGB", (picture.width, picture.height + legend.height), "white")
    canvas.paste(picture, (0, 0))
    canvas.paste(legend, (0, picture.height))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
