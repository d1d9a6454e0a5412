"""Reading every segmentation layout into the same MaskSource, and one-line errors for broken pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.masks.images import load_mask, save_mask
from pixelforge.data.masks.source import VOC_CLASSES, make_mask_splits, read_masks
from pixelforge.errors import PixelforgeError

from .conftest import scene, write_pair


def test_builtin_layout_reads_splits_and_class_names(split_layout):
    source = read_masks(split_layout)
    assert source.classes == ["background", "red", "green"]
    assert [len(source.split(s)) for s in ("train", "val")] == [4, 2]
    assert source.has_splits and (source.channels, source.bit_depth) == (3, 8)
    for sample in source.samples:  # paired by name, not by position
        assert sample.image.name == sample.mask.name and sample.image.parent.name == sample.mask.parent.name


def test_flat_layout_pairs_jpg_with_tif_and_suffixed_masks(tmp_path):
    write_pair(tmp_path / "images" / "a.jpg", tmp_path / "masks" / "a.tif", 0,
               mask_fn=lambda m, p: Image.fromarray(m.astype(np.uint8)).save(p))
    write_pair(tmp_path / "images" / "b.jpg", tmp_path / "masks" / "b_mask.png", 1)
    source = read_masks(tmp_path)
    assert {(s.image.name, s.mask.name) for s in source.samples} == {("a.jpg", "a.tif"), ("b.jpg", "b_mask.png")}
    assert not source.has_splits
    # No classes file: names from the largest id found (2) -> 3 classes.
    assert source.classes == ["class_0", "class_1", "class_2"]
    assert read_masks(tmp_path, num_classes=5).classes[-1] == "class_4"
    split = make_mask_splits(source, val_fraction=0.5, seed=1)
    assert sorted(s.split for s in split.samples) == ["train", "val"]
    assert make_mask_splits(split, 0.5, seed=2) is split  # given splits are kept


def test_missing_partner_errors_name_the_file(tmp_path):
    write_pair(tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png", 0)
    Image.fromarray(scene(1)[0]).save(tmp_path / "images" / "lonely.png")
    with pytest.raises(PixelforgeError, match=r"lonely\.png: image without mask") as info:
        read_masks(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "images" / "lonely.png").unlink()
    save_mask(np.zeros((4, 4), np.int64), tmp_path / "masks" / "orphan.png")
    with pytest.raises(PixelforgeError, match=r"orphan\.png: mask without image"):
        read_masks(tmp_path)


def test_binary_masks_saved_as_0_and_255_are_refused_not_learnt_as_background(tmp_path):
    """0/255 is how most binary sets (Carvana, ISIC) are drawn; 255 is the ignore index, so training would see
    background only and report a meaningless mIoU. Refused in one line with the fix."""
    for i in range(2):
        write_pair(tmp_path / "images" / f"{i}.png", tmp_path / "masks" / f"{i}.png", i,
                   mask_fn=lambda m, p: Image.fromarray(np.where(m > 0, 255, 0).astype(np.uint8)).save(p))
    with pytest.raises(PixelforgeError, match=r"masks hold only 0 \(background\) and 255 .*re-save them as 0/1"):
        read_masks(tmp_path)
    assert read_masks(tmp_path, ignore_index=254).classes[-1] == "class_255"  # not ignored: a class of its own


def test_masks_saved_as_jpeg_are_refused_naming_the_file(tmp_path):
    """JPEG blurs class ids along edges (a 0/1/2 mask comes back holding 3s and 4s): the classes found, or the
    pixels learnt, would be wrong without a word."""
    for i in range(2):
        write_pair(tmp_path / "images" / f"{i}.png", tmp_path / "masks" / f"{i}.jpg", i,
                   mask_fn=lambda m, p: Image.fromarray(m.astype(np.uint8)).save(p, quality=75))
    with pytest.raises(PixelforgeError, match=r"0\.jpg: a mask saved as JPEG.*save the masks as PNG") as info:
        read_masks(tmp_path)
    assert "\n" not in str(info.value)


def test_bad_layout_and_class_file_errors(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(PixelforgeError, match="not a segmentation dataset"):
        read_masks(tmp_path)
    write_pair(tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png", 0)
    (tmp_path / "classes.json").write_text('{"0": "bg", "2": "x"}')
    with pytest.raises(PixelforgeError, match="classes.json: class ids must be 0..1"):
        read_masks(tmp_path)
    (tmp_path / "classes.json").write_text('["bg", "a", "b"]')
    with pytest.raises(PixelforgeError, match="num_classes=4 but the class list has 3"):
        read_masks(tmp_path, num_classes=4)


def test_voc_layout_with_palette_masks_and_boundary(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    for i, name in enumerate(["2007_000001", "2007_000002", "2007_000003"]):
        image, mask = scene(i)
        mask[19, 4:20] = 255  # VOC draws a 255 boundary around objects
        (voc / "JPEGImages").mkdir(exist_ok=True)
        Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg")
        save_mask(np.where(mask == 2, 15, mask), voc / "SegmentationClass" / f"{name}.png")  # 15 = person
    Image.fromarray(scene(9)[0]).save(voc / "JPEGImages" / "unlabelled.jpg")  # VOC has many; not an error
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000001\n2007_000002\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000003\n")
    source = read_masks(tmp_path)
    assert source.classes == VOC_CLASSES and source.classes[15] == "person"
    assert [len(source.split(s)) for s in ("train", "val")] == [2, 1]
    assert Image.open(source.samples[0].mask).mode == "P"
    assert set(np.unique(load_mask(source.samples[0].mask)).tolist()) == {0, 1, 15, 255}
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000003\n2007_999999\n")
    with pytest.raises(PixelforgeError, match=r"val.txt:2: image '2007_999999' is not in JPEGImages"):
        read_masks(voc)


def _coco(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(tmp_path / "images" / "b.png")
    big = [[0, 0, 40, 0, 40, 30, 0, 30]]  # 40x30 box polygon, category 7 -> index 2
    small = [[10, 10, 20, 10, 20, 20, 10, 20]]  # on top of it, category 3 -> index 1
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((5, 5), np.uint8), ((0, 25), (25, 0)))))
    rle["counts"] = rle["counts"].decode()
    return {
        "images": [{"id": 1, "file_name": "a.png", "width": 50, "height": 40},
                   {"id": 2, "file_name": "b.png", "width": 30, "height": 30}],
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "segmentation": big, "area": 1200, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "segmentation": small, "area": 100, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "segmentation": rle, "area": 25, "iscrowd": 1},
        ],
    }


def test_coco_polygons_and_rle_are_rasterised_and_cached(tmp_path):
    coco = _coco(tmp_path)
    (tmp_path / "train.json").write_text(json.dumps(coco))
    source = read_masks(tmp_path / "train.json")
    assert source.classes == ["background", "cat", "dog"]  # sorted by category id: 3, 7
    assert {s.split for s in source.samples} == {"train"}
    a = load_mask(source.samples[0].mask)
    assert a.shape == (40, 50)
    assert a[25, 5] == 2 and a[15, 15] == 1 and a[35, 45] == 0  # small cat painted over the big dog
    b = load_mask(source.samples[1].mask)
    assert (b[:5, 25:] == 255).all() and (b == 255).sum() == 25  # crowd RLE -> ignore
    # The cache lives under $PIXELFORGE_HOME, never beside the user's data, and is reused.
    assert "masks" in source.samples[0].mask.parts and tmp_path not in source.samples[0].mask.parents
    mtime = source.samples[0].mask.stat().st_mtime_ns
    assert read_masks(tmp_path / "train.json").samples[0].mask.stat().st_mtime_ns == mtime


def test_coco_folder_of_split_jsons_and_missing_image(tmp_path):
    coco = _coco(tmp_path)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    assert {s.split for s in read_masks(tmp_path).samples} == {"val"}
    coco["images"].append({"id": 3, "file_name": "gone.png", "width": 5, "height": 5})
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(coco))
    with pytest.raises(PixelforgeError, match=r"image id 3 file 'gone.png' not found"):
        read_masks(tmp_path)
