"""The classical codecs a user would otherwise pick, on the same images: Pillow's JPEG and WebP at a quality sweep.

Each image is coded at every quality of the sweep; the file's bits over the image's pixels give its bpp (as for
.pfc files). `psnr_at_bpp` interpolates an image's PSNR-vs-bpp curve linearly at another codec's bpp for that same
image ("matched bpp"); outside the sweep's range it returns the nearest end and says so.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pixelforge.metrics.image_quality import ms_ssim_or_none, psnr

# Denser at low qualities, where the learned codecs' rates lie; 95 and 100 reach well above 2 bpp.
QUALITIES = {"jpeg": [5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95],
             "webp": [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}
MS_SSIM_MAX_BPP = 3.0  # MS-SSIM of the sweep's points above this rate is not computed (far off the curve, slow)


def encode_classical(pixels: np.ndarray, codec: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    # 4:2:0 chroma subsampling is both libraries' default; optimize=True gives JPEG its optimal Huffman tables (what
    # a careful user would do); WebP keeps Pillow's default effort (method 4).
    options = {"optimize": True} if codec == "jpeg" else {}
    Image.fromarray(pixels).save(buffer, format=codec.upper(), quality=quality, **options)
    return buffer.getvalue()


def sweep(pixels: np.ndarray, codec: str) -> list[dict]:
    """[{quality, bpp, psnr, ms_ssim, bytes}] over the codec's quality sweep for one 8-bit RGB image."""
    pixels_count = pixels.shape[0] * pixels.shape[1]
    rows = []
    for quality in QUALITIES[codec]:
        data = encode_classical(pixels, codec, quality)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        bpp = 8 * len(data) / pixels_count
        rows.append({"quality": quality, "bytes": len(data), "bpp": bpp, "psnr": psnr(pixels, decoded),
                     "ms_ssim": ms_ssim_or_none(pixels, decoded) if bpp <= MS_SSIM_MAX_BPP else None})
    return rows


def value_at_bpp(rows: list[dict], bpp: float, key: str = "psnr") -> tuple[float | None, bool]:
    """(the sweep's `key` linearly interpolated at `bpp`, whether `bpp` lay inside the sweep's range)."""
    points = sorted((r["bpp"], r[key]) for r in rows if r[key] is not None)
    if not points:
        return None, False
    xs, ys = zip(*points)
    return float(np.interp(bpp, xs, ys)), xs[0] <= bpp <= xs[-1]
