"""Augmentation presets for (image, mask) pairs, built from torchvision transforms v2.

v2 samples each random parameter once and applies it to every tv_tensor in the call, so a `tv_tensors.Mask` is
cropped, flipped and rotated exactly like its `tv_tensors.Image`, and always with nearest-neighbour sampling: a
mask pixel is a class id, and blending two ids would invent a third. Presets (training crops are img_size square):

    none      resize the shorter side to img_size, centre crop (what evaluation uses)
    light     random resized crop (area 0.5-1 of the image), horizontal flip
    standard  crop area 0.3-1, horizontal flip, rotation up to 10 degrees, colour jitter 0.2
    strong    crop area 0.2-1, horizontal and vertical flips, rotation up to 20 degrees, colour jitter 0.3

A config's `augment_options` sets these knobs over its preset (`--task segment` refuses the others, which do not
apply to a mask). Pixels that rotation brings in from outside the image get `ignore_index` in the mask, so no loss is computed on
them. Colour jitter is applied to 8-bit RGB images only: on 16-bit or grayscale data brightness/saturation jitter
would change the measured intensities the model is meant to learn from.

Evaluation: `eval_mask_transform` resizes the shorter side to img_size and centre-crops, which is what training
sees at crop scale 1 and batches well. Scores on that are approximate for non-square images; full-resolution
scoring uses `eval_mask_transform(img_size, crop=False)` (whole image, shorter side img_size) and compares the
upsampled prediction with `MaskDataset.full_mask(i)`, the mask at its original resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelforge.errors import PixelforgeError


@dataclass(frozen=True)
class MaskAugment:  # its fields are data/augment_options.py's MASK_KNOBS, which `augment_options` may set
    crop_scale_min: float | None  # RandomResizedCrop's lower area bound; None: resize + centre crop
    hflip: bool = False
    vflip: bool = False
    rotate_degrees: float = 0.0
    color_jitter: float = 0.0


MASK_PRESETS: dict[str, MaskAugment] = {
    "none": MaskAugment(crop_scale_min=None),
    "light": MaskAugment(crop_scale_min=0.5, hflip=True),
    "standard": MaskAugment(crop_scale_min=0.3, hflip=True, rotate_degrees=10, color_jitter=0.2),
    "strong": MaskAugment(crop_scale_min=0.2, hflip=True, vflip=True, rotate_degrees=20, color_jitter=0.3),
}


class ColorJitterRGB8:
    """Colour jitter on the image of an (image, mask) pair, only when the image is 8-bit with 3 channels."""

    def __init__(self, strength: float):
        self.jitter = v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=strength / 6)

    def __call__(self, image, *rest):
        if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.shape[-3] == 3:
            image = self.jitter(image)
        return (image, *rest) if rest else image

    def __repr__(self) -> str:
        return f"ColorJitterRGB8({self.jitter})"


def _preset(augment: str) -> MaskAugment:
    if augment not in MASK_PRESETS:
        raise PixelforgeError(f"augment {augment!r} is not one of {', '.join(MASK_PRESETS)}")
    return MASK_PRESETS[augment]


def train_mask_transform(img_size: int, augment: str = "light", ignore_index: int = 255,
                         knobs: dict | None = None) -> v2.Compose:
    """Random crop/flip/rotate/jitter for (tv_tensors.Image, tv_tensors.Mask) pairs; outputs img_size x img_size.

    `knobs` (the config's `augment_options`) override the preset's values of `MASK_KNOBS`; None means "the preset's".

    Example:
        >>> from torchvision import tv_tensors
        >>> image = tv_tensors.Image(torch.zeros(3, 80, 100, dtype=torch.uint8))
        >>> mask = tv_tensors.Mask(torch.ones(80, 100, dtype=torch.uint8))
        >>> [t.shape[-2:] for t in train_mask_transform(64, "standard")(image, mask)]
        [torch.Size([64, 64]), torch.Size([64, 64])]
    """
    options = replace(_preset(augment), **{k: v for k, v in (knobs or {}).items() if v is not None})
    if options.crop_scale_min is None:
        ops: list = [v2.Resize(img_size, antialias=True), v2.CenterCrop(img_size)]
    else:
        ops = [v2.RandomResizedCrop(img_size, scale=(options.crop_scale_min, 1.0), antialias=True)]
    if options.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if options.vflip:
        ops.append(v2.RandomVerticalFlip())
    if options.rotate_degrees:
        ops.append(v2.RandomRotation(options.rotate_degrees, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}))
    if options.color_jitter:
        ops.append(ColorJitterRGB8(options.color_jitter))
    return v2.Compose(ops)


def eval_mask_transform(img_size: int, crop: bool = True) -> v2.Compose:
    """Deterministic evaluation transform: shorter side to img_size, then a centre crop (unless `crop=False`).

    Nothing is padded (the shorter side is exactly img_size before the crop), so no ignore fill is needed.
    """
    ops: list = [v2.Resize(img_size, antialias=True)]
    if crop:
        ops.append(v2.CenterCrop(img_size))
    return v2.Compose(ops)
