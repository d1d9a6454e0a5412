"""Drawing the built-in `shapes` datasets' shapes: shared by the class-folder, box and mask generators (which
`data/builtin.py` calls, so they cannot import it back)."""

from __future__ import annotations

import numpy as np

from PIL import ImageDraw

SHAPE_CLASSES = ["circle", "square", "triangle", "star"]


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, fill) -> None:
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        return
    corners = {"square": 4, "triangle": 3, "star": 10}[kind]
    radii = [r if (kind != "star" or k % 2 == 0) else r * 0.45 for k in range(corners)]
    points = [
        (cx + rad * np.cos(angle + 2 * np.pi * k / corners), cy + rad * np.sin(angle + 2 * np.pi * k / corners))
        for k, rad in enumerate(radii)
    ]
    draw.polygon(points, fill=fill)
