"""Writing generated images: one PNG each, a grid, and the GIF over the per-epoch grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_pil(image: torch.Tensor) -> Image.Image:
    """A [-1, 1] [C, H, W] tensor as a PIL image (grey for one channel)."""
    array = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)


def grid_image(images: torch.Tensor, columns: int, pad: int = 2) -> Image.Image:
    from torchvision.utils import make_grid

    grid = make_grid((images.clamp(-1, 1) + 1) / 2, nrow=columns, padding=pad, pad_value=1.0)
    array = (grid * 255).round().byte().permute(1, 2, 0).numpy()
    # make_grid repeats a grey image's channel three times; grey samples make a grey grid, as a package's does
    return Image.fromarray(array[..., 0] if images.shape[1] == 1 else array)


def save_grid(images: torch.Tensor, path: Path, columns: int, scale: int | None = None) -> Path:
    """A grid PNG; small images are enlarged (nearest) so a 32 px grid is legible."""
    from pixelforge.deploy.runtime.gan import grid_scale
    from pixelforge.runs.folder import atomic_write_bytes

    img = grid_image(images, columns)
    scale = scale or grid_scale(images.shape[-1])
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    atomic_write_bytes(path, lambda f: img.save(f, format="PNG"))
    return path


def write_gif(frames: list[Path], path: Path, ms_per_frame: int = 400) -> Path | None:
    """The per-epoch grids as one animated GIF (the last frame held longer)."""
    from pixelforge.runs.folder import atomic_write_bytes

    if not frames:
        return None
    images = [Image.open(p).convert("RGB") for p in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [2000]
    atomic_write_bytes(Path(path), lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                            duration=durations, loop=0))
    return Path(path)


def save_pngs(images: torch.Tensor, out: Path, names: list[str]) -> list[Path]:
    paths = []
    for image, name in zip(images, names):
        path = Path(out) / name
        to_pil(image).save(path)
        paths.append(path)
    return paths


def as_uint8_arrays(images: torch.Tensor) -> list[np.ndarray]:
    return [np.asarray(to_pil(x)) for x in images]
