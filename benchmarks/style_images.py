"""The pictures the style-transfer benchmarks use: a synthetic "stained glass" style image and unseen photos.

No painting ships with any installed package, so the style image is drawn here: Voronoi cells in a bold palette
with dark lead lines and brush-like strokes, a style whose transfer anyone can judge at a glance. The content
photos are scikit-image's (never used for training; training reads the hymenoptera photos).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTE = [(200, 30, 40), (240, 180, 20), (20, 70, 170), (30, 140, 70), (230, 110, 20), (110, 40, 140), (20, 160, 190)]


def stained_glass(size: int = 512, cells: int = 90, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, size, (cells, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    distances = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    order = np.sort(distances, axis=-1)
    label = distances.argmin(-1)
    colours = np.array([PALETTE[i % len(PALETTE)] for i in rng.permutation(cells)], dtype=np.float32)
    image = colours[label] * rng.uniform(0.8, 1.15, (size, size, 1))
    edge = (np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 3.5  # lead lines between cells
    image[edge] = (25, 20, 20)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(140):  # brush strokes: short, thick, light curves across the glass
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(10, 30)
        colour = tuple(int(c) for c in np.clip(np.array(PALETTE[rng.integers(len(PALETTE))]) + 60, 0, 255))
        draw.line([(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))], fill=colour, width=3)
    return picture.filter(ImageFilter.SMOOTH)


def content_photos() -> dict[str, Image.Image]:
    """Unseen photos from scikit-image (none is an ant or a bee)."""
    import skimage.data as data

    return {name: Image.fromarray(getattr(data, name)()) for name in ("astronaut", "chelsea", "coffee", "rocket")}


def write_images(folder: str | Path) -> tuple[Path, list[Path]]:
    """The style image and the content photos as files in `folder` (made if needed); existing files are kept."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    style = folder / "stained_glass.png"
    if not style.exists():
        stained_glass().save(style)
    photos = []
    for name, photo in content_photos().items():
        path = folder / f"{name}.png"
        if not path.exists():
            photo.convert("RGB").save(path)
        photos.append(path)
    return style, photos


if __name__ == "__main__":
    import sys

    print(write_images(sys.argv[1] if len(sys.argv) > 1 else "style-images"))
