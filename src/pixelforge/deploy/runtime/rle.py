"""Masks as COCO run-length encodings (pycocotools, no torch): what the server answers and predict writes.

    {"size": [height, width], "counts": str}   compressed RLE, column-major, with text counts (JSON-ready)
"""

from __future__ import annotations

import numpy as np


def encode_mask(mask: np.ndarray) -> dict:
    """A bool [H, W] mask as COCO compressed RLE with text counts."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_rle(mask: np.ndarray, classes: list[str]) -> dict[str, dict]:
    """COCO run-length encodings {class: {"size": [h, w], "counts": str}} of each class present in an index mask."""
    from pycocotools import mask as mask_utils

    rles = {}
    for index in np.unique(mask):
        if 0 <= index < len(classes):
            rle = mask_utils.encode(np.asfortranarray(mask == index, dtype=np.uint8))
            rles[classes[int(index)]] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return rles
