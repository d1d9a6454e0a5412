"""Detection augmentation: torchvision transforms v2 applied to an image, its boxes and its masks alike.

Each transform samples its parameters once and applies them to every tv_tensor of a sample (`Image`,
`BoundingBoxes`, `Mask`), so a flip or crop can never move the pixels without the boxes. Presets:

    none      nothing but the common ending (what evaluation uses)
    light     horizontal flip + mild scale / shift jitter (objects 0.8-1.2x their size)
    standard  photometric distortion + zoom-out + SSD's IoU crop (Liu et al. 2016, arXiv:1512.02325) + flip
    strong    all of standard, more often and wider, + scale / shift jitter and occasional grayscale

Note that scaling the whole image does nothing for torchvision detectors, which resize every input to their own
`min_size`; what changes object scale is zooming out, cropping and affine scaling inside a fixed canvas, which is
what the presets use. Every pipeline ends by clamping boxes to the image, dropping boxes that became degenerate
or were cropped away (`SanitizeBoundingBoxes`, which drops their labels and masks too), and converting the image
to float32 in [0, 1]: the detectors normalise inside.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from pixelforge.errors import PixelforgeError

PRESETS = ("none", "light", "standard", "strong")
# Zoom-out and affine fill the new border with the ImageNet mean colour (as torchvision's SSD recipe does);
# masks get 0 (no object).
_FILL = {tv_tensors.Image: (124, 116, 104), tv_tensors.Mask: 0}


def _ending(img_size: int | None) -> list:
    resize = [v2.Resize(size=None, max_size=img_size)] if img_size else []
    return [*resize, v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1),
            v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True)]


def eval_box_transform(img_size: int | None = None) -> v2.Compose:
    """No augmentation: longest side to `img_size` (a no-op on BoxDataset's cached pixels), float image in [0, 1]."""
    return v2.Compose(_ending(img_size))


def train_box_transform(img_size: int | None, augment: str = "light") -> v2.Compose:
    """The training pipeline for preset `augment` (none | light | standard | strong).

    Example:
        >>> import torch; from torchvision import tv_tensors
        >>> image = tv_tensors.Image(torch.zeros(3, 64, 96, dtype=torch.uint8))
        >>> boxes = tv_tensors.BoundingBoxes([[10, 10, 30, 40]], format="XYXY", canvas_size=(64, 96))
        >>> out, target = train_box_transform(96, "light")(image, {"boxes": boxes, "labels": torch.tensor([1])})
        >>> out.dtype, out.shape[1:]
        (torch.float32, torch.Size([64, 96]))
    """
    if augment == "none":
        ops: list = []
    elif augment == "light":
        ops = [v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=0, translate=(0.05, 0.05), scale=(0.8, 1.2),
                                                            fill=_FILL)]
    elif augment == "standard":
        ops = [v2.RandomPhotometricDistort(p=0.5), v2.RandomZoomOut(fill=_FILL, side_range=(1.0, 2.0), p=0.3),
               v2.RandomApply([v2.RandomIoUCrop()], p=0.5), v2.RandomHorizontalFlip()]
    elif augment == "strong":
        ops = [v2.RandomPhotometricDistort(p=0.8), v2.RandomZoomOut(fill=_FILL, side_range=(1.0, 3.0), p=0.5),
               v2.RandomIoUCrop(), v2.RandomHorizontalFlip(),
               v2.RandomAffine(degrees=0, translate=(0.1, 0.1), scale=(0.75, 1.25), fill=_FILL),
               v2.RandomGrayscale(p=0.1)]
    else:
        raise PixelforgeError(f"augment: unknown preset {augment!r}; choose one of {', '.join(PRESETS)}")
    return v2.Compose([*ops, *_ending(img_size)])
