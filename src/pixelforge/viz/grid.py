"""A gallery PNG: images in a grid, each with a title above it ("true ant\npred bee 0.93").

Drawn with Pillow, not matplotlib: a gallery is pictures and a few lines of text, which matplotlib's constrained
layout took ~0.8 s to place (a third of a small run's report); Pillow pastes and writes them in tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CELL = 220  # a panel's width in pixels: the 2.2-inch panels of the matplotlib gallery this replaced, at 100 dpi
PAD = 6
FONT_SIZE = 11


@dataclass(frozen=True)
class Panel:
    """Where one image and its title go on the canvas: (left, top, right, bottom) boxes in pixels."""

    title_lines: tuple[str, ...]
    title_box: tuple[int, int, int, int]
    image_box: tuple[int, int, int, int]


def plot_gallery(images: list[np.ndarray], titles: list[str], path: Path, columns: int = 6,
                 colors: list[str] | None = None, legend: list[tuple[str, tuple[int, int, int]]] | None = None,
                 cell: int = CELL) -> Path:
    """Images (HWC or HW; uint8, or floats in [0, 1]) in a grid, each under its title, written to PNG `path`.
    `colors`: one CSS colour name or #hex per title (black by default); `legend`: (name, RGB) swatches in rows
    under the grid (a mask's class colours); `cell`: a panel's width in pixels."""
    font = ImageFont.load_default(size=FONT_SIZE)
    pictures = [_as_picture(image) for image in images]
    panels, (width, height) = gallery_layout([p.size for p in pictures], titles, columns, font, cell)
    swatches = legend_layout([name for name, _ in legend or []], font, width, top=height)
    canvas = Image.new("RGB", (width, max([height] + [box[3] + PAD for box in swatches])), "white")
    draw = ImageDraw.Draw(canvas)
    for (name, colour), (left, top, right, bottom) in zip(legend or [], swatches):
        draw.rectangle((left, top, right, bottom), fill=tuple(int(c) for c in colour))
        draw.text((right + PAD // 2, top), name, fill="black", font=font)
    for k, (picture, panel) in enumerate(zip(pictures, panels)):
        left, top, right, bottom = panel.image_box
        # Nearest neighbour keeps a 32 px image's pixels sharp when blown up (as matplotlib's imshow showed them);
        # below 2x it would make uneven blocks, where Lanczos looks like the photo.
        blown_up = right - left >= 2 * picture.width
        canvas.paste(picture.resize((right - left, bottom - top),
                                    Image.Resampling.NEAREST if blown_up else Image.Resampling.LANCZOS), (left, top))
        x0, y0, x1, _ = panel.title_box
        draw.multiline_text(((x0 + x1) / 2, y0), "\n".join(panel.title_lines), fill=(colors[k] if colors else "black"),
                            font=font, anchor="ma", align="center", spacing=_spacing(font))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # zlib level 1, not Pillow's 6: a gallery of photos or noisy images barely compresses either way (level 6 wrote
    # a 12-image gallery of built-in shapes in 0.30 s and 662 KB, level 1 in 0.09 s and 782 KB; Grad-CAM overlays of
    # photos 371 KB vs 387 KB), and every run's report writes two.
    canvas.save(path, compress_level=1)
    return Path(path)


def gallery_layout(sizes: list[tuple[int, int]], titles: list[str], columns: int,
                   font: ImageFont.FreeTypeFont, cell: int = CELL) -> tuple[list[Panel], tuple[int, int]]:
    """Each panel's boxes and the canvas (width, height) for images of `sizes` (width, height) under `titles`.

    Each title is wrapped to its panel's width; a row is as tall as its longest title plus its tallest image, scaled
    to fit a cell - 2 PAD square, so a row of wide photos is not padded with white to a square."""
    columns = max(1, min(columns, len(sizes)))
    room = cell - 2 * PAD
    line_height = sum(font.getmetrics()) + _spacing(font)
    wrapped = [tuple(wrap_to_width(title, font, room)) for title in titles]
    panels, top = [], 0
    for row_start in range(0, len(sizes), columns):
        row = range(row_start, min(row_start + columns, len(sizes)))
        scaled = [_fit(sizes[k], room) for k in row]
        title_height = max(len(wrapped[k]) for k in row) * line_height if titles else 0
        image_top = top + PAD + title_height + (PAD // 2 if titles else 0)
        for column, (k, (width, height)) in enumerate(zip(row, scaled)):
            left = column * cell + (cell - width) // 2
            panels.append(Panel(wrapped[k] if titles else (),
                                (column * cell + PAD, top + PAD, (column + 1) * cell - PAD, top + PAD + title_height),
                                (left, image_top, left + width, image_top + height)))
        top = image_top + max(height for _, height in scaled) + PAD
    return panels, (columns * cell, max(top, 1))


def legend_layout(names: list[str], font: ImageFont.FreeTypeFont, width: int, top: int) -> list[tuple[int, ...]]:
    """Each legend entry's swatch box (left, top, right, bottom) below `top`: a square as tall as a line of text,
    then its name, entries flowing left to right and onto a new line where the next would pass `width`."""
    side = sum(font.getmetrics())
    boxes, x, y = [], PAD, top + PAD
    for name in names:
        entry = side + PAD // 2 + int(font.getlength(name)) + 2 * PAD
        if x > PAD and x + entry > width:
            x, y = PAD, y + side + PAD
        boxes.append((x, y, x + side, y + side))
        x += entry
    return boxes


def wrap_to_width(title: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """`title`'s lines, each broken at spaces (or inside a word longer than `width`) to at most `width` pixels."""
    lines = []
    for paragraph in title.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while font.getlength(word) > width:  # a class name with no spaces wider than the panel
                cut = 1
                while cut < len(word) and font.getlength(word[:cut + 1]) <= width:
                    cut += 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _spacing(font: ImageFont.FreeTypeFont) -> int:
    return max(2, font.size // 5)


def _fit(size: tuple[int, int], room: int) -> tuple[int, int]:
    width, height = size
    scale = room / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _as_picture(image: np.ndarray) -> Image.Image:
    array = np.asarray(image)
    if array.dtype != np.uint8:  # floats in [0, 1] (an augmented preview), as matplotlib's imshow took them
        array = (np.clip(array.astype(np.float32), 0, 1) * 255).round().astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
