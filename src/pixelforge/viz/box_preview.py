"""`pixelforge data preview --task detect`: a grid of augmented training images with their boxes and class names.

It runs the very dataset and transforms training uses, so a box that drifts from its object under a flip or a crop
shows up here before it costs a training run. Masks (instance data) are drawn under the boxes.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks, make_grid

from pixelforge.data.boxes.dataset import BoxDataset
from pixelforge.data.boxes.source import read_boxes
from pixelforge.data.boxes.transforms import train_box_transform

_PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
            "#469990", "#9a6324", "#800000", "#808000", "#000075"]


def _draw(image: torch.Tensor, target: dict, classes: list[str], img_size: int) -> torch.Tensor:
    pixels = (image.clamp(0, 1) * 255).to(torch.uint8).as_subclass(torch.Tensor)
    labels = target["labels"].tolist()
    colors = [_PALETTE[(label - 1) % len(_PALETTE)] for label in labels]
    if "masks" in target and len(labels):
        pixels = draw_segmentation_masks(pixels, target["masks"].bool(), alpha=0.4, colors=colors)
    if len(labels):
        names = [classes[i - 1] for i in labels]
        pixels = draw_bounding_boxes(pixels, target["boxes"].as_subclass(torch.Tensor), names, colors=colors, width=2)
    canvas = torch.full((3, img_size, img_size), 32, dtype=torch.uint8)  # images differ in size: pad to a square
    h, w = min(pixels.shape[1], img_size), min(pixels.shape[2], img_size)
    canvas[:, :h, :w] = pixels[:, :h, :w]
    return canvas


def write_box_preview(path: str | Path, out: str | Path, augment: str = "light", img_size: int = 320,
                      count: int = 16, seed: int = 0) -> Path:
    """Draw `count` training images of the dataset at `path`, augmented with preset `augment`, into PNG `out`.

    Example:
        >>> write_box_preview("shapes_detect", "preview.png", augment="standard", img_size=256)  # doctest: +SKIP
        PosixPath('preview.png')
    """
    from PIL import Image

    source = read_boxes(path)
    images = source.split("train") or source.images
    generator = torch.Generator().manual_seed(seed)
    chosen = [images[int(i)] for i in torch.randperm(len(images), generator=generator)[:count]]
    dataset = BoxDataset(chosen, source.category_ids, train_box_transform(img_size, augment), img_size)
    dataset.preload()
    torch.manual_seed(seed)
    tiles = [_draw(*dataset[i], source.classes, img_size) for i in range(len(dataset))]
    grid = make_grid(tiles, nrow=math.ceil(math.sqrt(len(tiles))), padding=4, pad_value=255)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(out)
    return out
