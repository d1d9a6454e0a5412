"""A learned codec's transforms run tile by tile, so a 24-108 megapixel photo needs one tile's memory.

The analysis transform g_a runs on overlapping image tiles and the synthesis transform g_s on overlapping latent
tiles; the whole latent is entropy-coded as before, so the `.pfc` format does not change. Each tile carries
`margin` latent positions of its neighbours (cut off again), computed from the layers' kernels, strides and
paddings so that every kept value sees only real neighbours: the tiled latent is the whole-image one up to float
rounding (GDN and ReLU act per position, so they add no reach). Images of at most TILE + 2 margins a side take
today's single pass, bit for bit.

Example:
    >>> latent_margin(COMPRESSAI_G_A, analysis=True), latent_margin(COMPRESSAI_G_S, analysis=False)
    (2, 2)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

TILE = 1024  # image pixels a side of a tile's kept core (64 latent positions at a 16x downsampling)

# (kernel, stride, padding, transposed) of each spatial layer, in order. CompressAI's `conv` is Conv2d(k=5, s=2,
# p=2) and its `deconv` ConvTranspose2d(k=5, s=2, p=2, output_padding=1); both of its models stack four of them.
Layer = tuple[int, int, int, bool]
COMPRESSAI_G_A: tuple[Layer, ...] = ((5, 2, 2, False),) * 4
COMPRESSAI_G_S: tuple[Layer, ...] = ((5, 2, 2, True),) * 4


def _inputs_of(layer: Layer, lo: int, hi: int) -> tuple[int, int]:
    """The input positions that outputs lo..hi of one layer read (1-D; padding positions count as outside)."""
    kernel, stride, padding, transposed = layer
    if transposed:  # output o receives input i when o = i * stride - padding + t, 0 <= t < kernel
        return -(-(lo + padding - kernel + 1) // stride), (hi + padding) // stride
    return lo * stride - padding, hi * stride - padding + kernel - 1


def latent_margin(layers: tuple[Layer, ...], analysis: bool, tile_latent: int = 64) -> int:
    """The fewest latent positions of context a tile needs at each side so that its kept core is exact.

    `analysis`: the layers map an image to its latent (g_a); else a latent to an image (g_s).
    """
    strides = [layer[1] for layer in layers]
    total = math.prod(strides)

    def exact(margin: int) -> bool:
        n = tile_latent + 2 * margin  # a whole tile, margins included, in latent positions
        if analysis:  # the length of each layer's input, the image first
            lengths = [n * total // math.prod(strides[:i]) for i in range(len(layers))]
            ends = (margin, n - 1 - margin)
        else:
            lengths = [n * math.prod(strides[:i]) for i in range(len(layers))]
            ends = (margin * total, (n - margin) * total - 1)
        for end in ends:
            lo = hi = end
            for layer, length in zip(reversed(layers), reversed(lengths)):
                lo, hi = _inputs_of(layer, lo, hi)
                if lo < 0 or hi > length - 1:
                    return False
        return True

    return next(m for m in range(tile_latent) if exact(m))


def _tiles(size: int, core: int, margin: int):
    """(window start, window end, core start, core end) along one side, in latent positions."""
    for start in range(0, size, core):
        end = min(size, start + core)
        yield max(0, start - margin), min(size, end + margin), start, end


def analyse_in_tiles(padded: np.ndarray, g_a: Callable, layers: tuple[Layer, ...] | None,
                     tile: int | None = None) -> np.ndarray:
    """y = g_a(x) of an edge-padded uint8 image [H, W, 3] (sides multiples of the downsampling), tile by tile when
    a side exceeds `tile` + 2 margins; the float input is made one tile at a time."""
    def as_input(pixels: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((pixels.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])

    height, width = padded.shape[:2]
    if layers is None:
        return g_a(as_input(padded))
    step = math.prod(layer[1] for layer in layers)
    margin, core = latent_margin(layers, analysis=True), max(1, (tile or TILE) // step)
    if max(height, width) <= (core + 2 * margin) * step:
        return g_a(as_input(padded))
    y = None
    for r0, r1, top, bottom in _tiles(height // step, core, margin):
        for c0, c1, left, right in _tiles(width // step, core, margin):
            piece = g_a(as_input(padded[r0 * step:r1 * step, c0 * step:c1 * step]))
            if y is None:
                y = np.empty((1, piece.shape[1], height // step, width // step), np.float32)
            y[:, :, top:bottom, left:right] = piece[:, :, top - r0:bottom - r0, left - c0:right - c0]
    return y


def to_pixels(x_hat: np.ndarray) -> np.ndarray:
    """A synthesis output [1, 3, h, w] in [0, 1] as 8-bit RGB [h, w, 3]."""
    return (np.clip(x_hat[0], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def synthesise_in_tiles(y_hat: np.ndarray, g_s: Callable, layers: tuple[Layer, ...] | None, height: int, width: int,
                        tile: int | None = None) -> np.ndarray:
    """The 8-bit RGB image [height, width, 3] of g_s(ŷ), cropped; tile by tile over ŷ when its image side exceeds
    `tile` + 2 margins, each tile made 8-bit before the next runs."""
    h, w = y_hat.shape[2:]
    if layers is None:
        return to_pixels(g_s(y_hat)[:, :, :height, :width])
    step = math.prod(layer[1] for layer in layers)
    margin, core = latent_margin(layers, analysis=False), max(1, (tile or TILE) // step)
    if max(h, w) <= core + 2 * margin:
        return to_pixels(g_s(y_hat)[:, :, :height, :width])
    out = np.empty((height, width, 3), np.uint8)
    for r0, r1, top, bottom in _tiles(h, core, margin):
        for c0, c1, left, right in _tiles(w, core, margin):
            if top * step >= height or left * step >= width:
                continue  # padding only
            piece = g_s(np.ascontiguousarray(y_hat[:, :, r0:r1, c0:c1]))
            rows = slice((top - r0) * step, (top - r0) * step + min(bottom * step, height) - top * step)
            cols = slice((left - c0) * step, (left - c0) * step + min(right * step, width) - left * step)
            out[top * step:min(bottom * step, height), left * step:min(right * step, width)] = \
                to_pixels(piece[:, :, rows, cols])
    return out
