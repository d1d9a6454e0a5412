"""`pixelforge data preview`: a grid of augmented training samples with labels, so users see what the model sees."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.data.dataset import ImageDataset
from pixelforge.data.sources import resolve_data
from pixelforge.data.transforms import decode_size, resolve_augment, train_transform


def write_preview(data: str, out: str | Path, augment: str = "light", img_size: int = 224, count: int = 24,
                  seed: int = 0) -> Path:
    """Draw `count` samples spread over the classes, augmented with preset `augment`, into PNG `out`."""
    from pixelforge.viz.grid import plot_gallery

    source = resolve_data(data)
    samples = source.split("train") or source.samples
    generator = torch.Generator().manual_seed(seed)
    chosen = [samples[int(i)] for i in torch.randperm(len(samples), generator=generator)[:count]]
    # Mean 0 / std 1 keeps pixels in [0, 1] after ToDtype, which is what a picture needs.
    transform = train_transform(img_size, (0.0,) * 3, (1.0,) * 3, resolve_augment(augment))
    dataset = ImageDataset(chosen, {c: i for i, c in enumerate(source.classes)}, decode_size(img_size, 0.875), transform)
    dataset.preload()
    torch.manual_seed(seed)
    images, titles = [], []
    for index in range(len(dataset)):
        tensor, _ = dataset[index]
        images.append(tensor.clamp(0, 1).permute(1, 2, 0).numpy())
        titles.append(dataset.samples[index].label)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return plot_gallery(images, titles, out)
