"""Reflect-padding images to a multiple of a network's stride, for the image-to-image runtimes (style, arbitrary
style, denoise): their fully convolutional networks need sides divisible by their downsampling factor."""

from __future__ import annotations

import numpy as np


# A style network's first 9x9 convolution reflect-pads by 4 pixels (the fast networks' and Magenta's arbitrary
# one alike): a side of 4 or less (a 3 px strip, a 1 px icon) cannot be padded so. Smaller images are mirrored out
# to this size and cropped back.
MIN_SIDE = 8


def pad_to_multiple(array: np.ndarray, multiple: int = 4, min_side: int = 0) -> np.ndarray:
    """HxWxC -> padded at the bottom and right by reflection so both sides are multiples of `multiple` (and at least
    `min_side`, itself a multiple)."""
    pad_h, pad_w = (max((-side) % multiple, min_side - side) for side in array.shape[:2])
    if not (pad_h or pad_w):
        return array
    # Reflection needs the image wider than the pad (a 2-px-wide image padded by 3); mirror with the edge then.
    mode = "reflect" if pad_h < array.shape[0] and pad_w < array.shape[1] else "symmetric"
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
