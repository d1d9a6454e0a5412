"""Augmentation moves boxes with the pixels; the dataset caches resized pixels and yields detector targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from pixelforge.data.boxes.dataset import BoxDataset, box_collate
from pixelforge.data.boxes.source import BoxImage, read_boxes
from pixelforge.data.boxes.transforms import PRESETS, eval_box_transform, train_box_transform
from pixelforge.errors import PixelforgeError


def _rectangle_sample(h=72, w=96, box=(20, 14, 61, 50)):
    """A white rectangle on black, its box, and its mask (masks go through geometry but not colour jitter)."""
    x1, y1, x2, y2 = box
    image = torch.zeros(3, h, w, dtype=torch.uint8)
    image[:, y1:y2, x1:x2] = 255
    mask = torch.zeros(1, h, w, dtype=torch.uint8)
    mask[:, y1:y2, x1:x2] = 1
    target = {"boxes": tv_tensors.BoundingBoxes([[float(v) for v in box]], format="XYXY", canvas_size=(h, w)),
              "labels": torch.tensor([1]), "masks": tv_tensors.Mask(mask)}
    return tv_tensors.Image(image), target


def _bounds(pixels: torch.Tensor) -> list[float]:
    ys, xs = torch.nonzero(pixels, as_tuple=True)
    return [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


@pytest.mark.parametrize("augment", PRESETS)
def test_boxes_stay_tight_around_the_object_under_every_preset(augment):
    kept = 0
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = train_box_transform(96, augment)(*_rectangle_sample())
        assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
        assert max(image.shape[1:]) <= 96
        boxes, mask = target["boxes"], target["masks"]
        assert len(boxes) == len(target["labels"]) == len(mask)
        if len(boxes) == 0:  # cropped away: then no object pixels may remain visible in any quantity
            continue
        kept += 1
        assert np.allclose(boxes[0].tolist(), _bounds(mask[0]), atol=2.0), (seed, boxes, _bounds(mask[0]))
        if augment in ("none", "light"):  # no colour changes: the white pixels themselves must match the box
            assert np.allclose(boxes[0].tolist(), _bounds(image[0] > 0.5), atol=2.0)
    assert kept >= 6


def test_crop_clips_boxes_it_cuts_and_drops_boxes_it_cuts_away():
    from torchvision.transforms.v2 import functional as F

    image, target = _rectangle_sample()
    for (top, left), expected in [((30, 40), 1), ((52, 76), 0)]:  # half the rectangle / the empty corner

        def crop(x):
            return F.crop(x, top, left, 20, 20)

        cropped = {"boxes": crop(target["boxes"]), "labels": target["labels"], "masks": crop(target["masks"])}
        out_image, out = eval_box_transform(None)(crop(image), cropped)
        assert len(out["boxes"]) == len(out["labels"]) == len(out["masks"]) == expected
        if expected:
            assert out["boxes"][0].tolist() == _bounds(out["masks"][0]) == _bounds(out_image[0] > 0.5)


def test_iou_crop_drops_boxes_outside_the_crop():
    sample_boxes = [[2, 2, 12, 12], [80, 60, 94, 70]]
    image = tv_tensors.Image(torch.zeros(3, 72, 96, dtype=torch.uint8))
    target = {"boxes": tv_tensors.BoundingBoxes(sample_boxes, format="XYXY", canvas_size=(72, 96)),
              "labels": torch.tensor([1, 2])}
    dropped = 0
    for seed in range(20):
        torch.manual_seed(seed)
        _, out = train_box_transform(None, "strong")(image, target)
        assert len(out["boxes"]) == len(out["labels"])
        w, h = out["boxes"].canvas_size[1], out["boxes"].canvas_size[0]
        if len(out["boxes"]):
            assert out["boxes"][:, 0].min() >= 0 and out["boxes"][:, 2].max() <= w and out["boxes"][:, 3].max() <= h
            assert ((out["boxes"][:, 2] - out["boxes"][:, 0]) >= 1).all()
        dropped += len(out["boxes"]) < 2
    assert dropped > 0  # strong crops sometimes leave a box behind


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(PixelforgeError, match="unknown preset 'heavy'"):
        train_box_transform(64, "heavy")


def test_dataset_caches_longest_side_and_scales_boxes(tiny_coco):
    source = read_boxes(tiny_coco)
    train = source.split("train")
    dataset = BoxDataset(train, source.category_ids, eval_box_transform(32), img_size=32)
    assert dataset.preload() == []
    image, target = dataset[0]  # a.png: 64x48 -> 32x24
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 24, 32) and image.dtype == torch.float32
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and target["boxes"].format.name == "XYXY"
    np.testing.assert_allclose(target["boxes"].tolist(), [[2, 3, 12, 8], [15, 10, 27.5, 22]])
    assert target["labels"].tolist() == [1, 2] and target["image_id"] == train[0].image_id
    assert "masks" not in target
    # the white rectangles of the image are where the scaled boxes say
    assert np.allclose(target["boxes"][0].tolist(), _bounds(image[0, :9] > 0.5), atol=1.0)
    images, targets = box_collate([dataset[0], dataset[1]])
    assert [tuple(i.shape) for i in images] == [(3, 24, 32), (3, 32, 23)] and len(targets) == 2


def test_dataset_maps_category_ids_to_contiguous_labels_and_drops_crowd(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10)).save(tmp_path / "x.png")
    image = BoxImage(tmp_path / "x.png", 20, 10, np.array([[0, 0, 5, 5], [5, 5, 9, 9], [1, 1, 8, 8]], np.float32),
                     np.array([7, 3, 7]), np.array([False, False, True]), 1, "train")
    _, target = BoxDataset([image], [3, 7])[0]
    assert target["labels"].tolist() == [2, 1] and len(target["boxes"]) == 2


def test_dataset_rasterises_polygons_and_rle_into_masks(tmp_path):
    from PIL import Image
    from pycocotools import mask as mask_utils

    Image.new("RGB", (40, 20)).save(tmp_path / "x.png")
    block = np.zeros((20, 40), np.uint8)
    block[10:20, 20:40] = 1
    rle = mask_utils.encode(np.asfortranarray(block))
    rle["counts"] = rle["counts"].decode()
    image = BoxImage(tmp_path / "x.png", 40, 20, np.array([[0, 0, 10, 10], [20, 10, 40, 20]], np.float32),
                     np.array([1, 1]), np.zeros(2, bool), 1, "train", [[[0, 0, 10, 0, 10, 10, 0, 10]], rle])
    _, target = BoxDataset([image], [1], img_size=20)[0]  # cached at 20x10
    masks = target["masks"]
    assert isinstance(masks, tv_tensors.Mask) and masks.shape == (2, 10, 20)
    assert _bounds(masks[1]) == [10, 5, 20, 10] and abs(_bounds(masks[0])[2] - 5) <= 1
