"""A torch Dataset over `BoxImage`s: decoded once into RAM, augmented as tv_tensors, batched as lists.

Decoding and resizing a photo costs far more than flipping or cropping it, and gives the same pixels every
epoch; so each image is decoded once (JPEG draft mode, EXIF rotation applied) and kept as uint8 with its longest
side == `img_size`, its boxes scaled by the same factor and its masks (instance data) rasterised at that size.
Augmentation then runs on the cached tensors. Items are `(image float32 [3, H, W] in [0, 1], target)` with target
`{"boxes": BoundingBoxes XYXY, "labels": int64 1..K, "image_id": int[, "masks": Mask uint8 [N, H, W]]}`, the
input torchvision detectors take. Images of a batch keep their own sizes (the detectors take lists), so
`box_collate` returns lists rather than stacking.

Crowd annotations are left out of training targets (torchvision's own COCO recipe does the same): they mark
regions to ignore at evaluation, not objects to learn.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from pixelforge.data.boxes.source import BoxImage
from pixelforge.data.images import ImageReadError, load_rgb
from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")


def rasterize(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO polygon list or RLE (compressed or not) as a uint8 [height, width] mask; empty -> all zeros."""
    from pycocotools import mask as mask_utils

    if not segmentation:
        return np.zeros((height, width), np.uint8)
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


def decode_box_image(image: BoxImage, img_size: int | None):
    """(uint8 [3, H, W] pixels, boxes scaled to them, uint8 [N, H, W] masks or None) for one `BoxImage`."""
    width, height = image.width, image.height
    min_side = math.ceil(img_size * min(width, height) / max(width, height)) if img_size and width and height else None
    img = load_rgb(image.path, min_side=min_side)
    if not width or not height:
        width, height = img.size
    if img_size:
        scale = img_size / max(img.size)
        size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        if size != img.size:
            img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    pixels = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
    new_h, new_w = pixels.shape[1:]
    # Scale by the annotated size, which is the frame the boxes were drawn in.
    factors = np.array([new_w / width, new_h / height] * 2, np.float32)
    boxes = torch.from_numpy(image.boxes.astype(np.float32) * factors)
    masks = None
    if image.segmentations is not None:
        full = np.stack([rasterize(s, height, width) for s in image.segmentations]) if len(image.segmentations) \
            else np.zeros((0, height, width), np.uint8)
        masks = F.resize(tv_tensors.Mask(torch.from_numpy(full)), [new_h, new_w]).as_subclass(torch.Tensor)
    return pixels, boxes, masks


class BoxDataset(Dataset):
    """`BoxImage`s -> (image, target) for torchvision detectors, decoding each file once.

    Args:
        images: the images of one split.
        category_ids: COCO category ids in label order: id `category_ids[i]` becomes label i + 1 (0 = background).
        transform: a transforms v2 callable `(Image, target) -> (Image, target)`; default: `eval_box_transform`.
        img_size: the longest side images are cached at; None keeps the original size.

    Example:
        >>> transform = train_box_transform(320, "light")  # doctest: +SKIP
        >>> ds = BoxDataset(source.split("train"), source.category_ids, transform, img_size=320)  # doctest: +SKIP
        >>> bad = ds.preload(workers=2)  # doctest: +SKIP
        >>> image, target = ds[0]  # doctest: +SKIP
    """

    def __init__(self, images: list[BoxImage], category_ids: list[int], transform=None, img_size: int | None = None):
        from pixelforge.data.boxes.transforms import eval_box_transform

        self.images = list(images)
        self.label_of = {int(cid): i + 1 for i, cid in enumerate(category_ids)}
        self.transform = transform or eval_box_transform(None)
        self.img_size = img_size
        self.cache: list | None = None
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.images)

    def preload(self, workers: int = 2, ram_budget_gb: float = 4.0, progress=None) -> list[str]:
        """Decode every image once; drop unreadable ones and return their error messages.

        When the cache would exceed `ram_budget_gb`, images are only validated and decoded again when read.
        """
        decoded, errors, total, keep = [None] * len(self.images), [], 0, True

        def work(index: int):
            try:
                return index, decode_box_image(self.images[index], self.img_size), None
            except ImageReadError as exc:
                return index, None, str(exc)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for index, item, error in pool.map(work, range(len(self.images))):
                if error:
                    errors.append(error)
                    log.warning("skipping unreadable image: %s", error)
                elif keep:
                    decoded[index] = item
                    total += item[0].numel() + (item[2].numel() if item[2] is not None else 0)
                    if total > ram_budget_gb * 1e9:
                        keep = False
                        log.info("image cache would exceed %.1f GB; decoding on the fly instead", ram_budget_gb)
                if progress is not None:
                    progress()
        bad = {i for i, image in enumerate(self.images) if any(e.startswith(str(image.path)) for e in errors)}
        self.images = [image for i, image in enumerate(self.images) if i not in bad]
        self.cache = [item for i, item in enumerate(decoded) if i not in bad] if keep else None
        self.unreadable += errors
        return errors

    def __getitem__(self, index: int):
        image = self.images[index]
        pixels, boxes, masks = self.cache[index] if self.cache is not None else decode_box_image(image, self.img_size)
        keep = torch.from_numpy(~image.iscrowd.astype(bool))
        try:
            labels = torch.tensor([self.label_of[int(c)] for c in image.labels], dtype=torch.int64)
        except KeyError as exc:
            raise PixelforgeError(f"{image.path}: category id {exc.args[0]} is not one of the training categories "
                                  f"{sorted(self.label_of)}; check the annotation file") from None
        canvas = tuple(pixels.shape[1:])
        target = {"boxes": tv_tensors.BoundingBoxes(boxes[keep], format="XYXY", canvas_size=canvas),
                  "labels": labels[keep], "image_id": int(image.image_id)}
        if masks is not None:
            target["masks"] = tv_tensors.Mask(masks[keep])
        return self.transform(tv_tensors.Image(pixels), target)


def box_collate(batch: list) -> tuple[list[torch.Tensor], list[dict]]:
    """[(image, target), ...] -> ([images], [targets]): detectors take lists of differently sized images."""
    return [image for image, _ in batch], [target for _, target in batch]
