"""Each detection format reads into the same BoxSource: boxes XYXY in pixels, COCO ids 1..K, splits."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import yaml
from PIL import Image

from pixelforge.data.boxes.source import BoxSource, make_box_splits, read_boxes
from pixelforge.errors import PixelforgeError

from .conftest import draw, write_tiny_coco


def test_coco_folder_reads_boxes_splits_and_categories(tiny_coco):
    source = read_boxes(tiny_coco)
    assert source.categories == {1: "cat", 2: "dog"} and source.classes == ["cat", "dog"]
    assert Counter(i.split for i in source.images) == {"train": 2, "val": 1}
    a = next(i for i in source.images if i.path.name == "a.png")
    assert (a.width, a.height) == (64, 48) and a.path.exists()
    np.testing.assert_allclose(a.boxes, [[4, 6, 24, 16], [30, 20, 55, 44]])  # xywh -> xyxy
    assert a.labels.tolist() == [1, 2] and a.boxes.dtype == np.float32 and a.labels.dtype == np.int64
    assert not a.iscrowd.any() and a.segmentations is None
    assert len(next(i for i in source.images if i.path.name == "c.png").boxes) == 0


def test_coco_single_file_with_images_beside_it_and_official_names(tmp_path):
    draw(tmp_path / "x.png", 32, 32, [(1, 2, 2, 8, 8)])
    data = {"images": [{"id": 7, "file_name": "x.png"}],  # no width/height: read from the file
            "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [2, 2, 8, 8], "iscrowd": 1,
                             "segmentation": [[2, 2, 10, 2, 10, 10]]}],
            "categories": [{"id": 3, "name": "bird"}]}
    (tmp_path / "instances_val2017.json").write_text(json.dumps(data))
    image = read_boxes(tmp_path / "instances_val2017.json").images[0]
    assert (image.width, image.height, image.split, image.image_id) == (32, 32, "val", 7)
    assert image.iscrowd.tolist() == [True] and image.segmentations == [[[2, 2, 10, 2, 10, 10]]]


def test_coco_category_id_zero_is_a_category_like_any_other(tmp_path):
    """Roboflow lists the dataset's name as category 0 (unused) above the real classes; pycocotools and detectron2
    take any integer ids, and the box tasks map ids to labels 1..K in id order, so 0 needs no renumbering."""
    from pixelforge.data.boxes.dataset import BoxDataset

    categories = [{"id": 0, "name": "pets", "supercategory": "none"}, {"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    images = [("train/a.png", "train", 64, 48, [(0, 4, 6, 20, 10), (2, 30, 20, 25, 24)])]
    source = read_boxes(write_tiny_coco(tmp_path / "coco", images, categories))
    assert source.classes == ["pets", "cat", "dog"] and source.category_ids == [0, 1, 2]
    _, target = BoxDataset(source.images, source.category_ids)[0]
    assert target["labels"].tolist() == [1, 3]


def test_coco_polygons_under_three_points_are_dropped(tmp_path):
    """COCO's own files hold a few 2-point polygons; pycocotools would read a 4-number one as a box and refuse a
    2-number one, so they are dropped (as detectron2 does) and the object's other polygons kept."""
    from pixelforge.data.boxes.dataset import BoxDataset

    draw(tmp_path / "x.png", 32, 32, [(1, 2, 2, 8, 8)])
    square = [2, 2, 10, 2, 10, 10, 2, 10]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "segmentation": [[2, 2, 10, 10], square]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "segmentation": [[2, 2]]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8], "segmentation": [[]]}]
    data = {"images": [{"id": 1, "file_name": "x.png"}], "annotations": anns, "categories": [{"id": 1, "name": "a"}]}
    (tmp_path / "train.json").write_text(json.dumps(data))
    image = read_boxes(tmp_path / "train.json").images[0]
    assert image.segmentations == [[square], [], []]
    _, target = BoxDataset([image], [1])[0]
    assert target["masks"].sum(dim=(1, 2)).tolist() == [64, 0, 0]


def write_tiny_yolo(root, names):
    for split, stem, lines in [("train", "a", ["0 0.5 0.5 0.5 0.25", "1 0.25 0.25 0.1 0.1"]), ("val", "b", [])]:
        draw(root / "images" / split / f"{stem}.png", 80, 40, [])
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        if lines:  # b has no label file at all: an image without objects
            (root / "labels" / split / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val",
                                                    "names": names}))
    return root


@pytest.mark.parametrize("names", [["cat", "dog"], {0: "cat", 1: "dog"}])
def test_yolo_reads_normalised_boxes_in_pixels(tmp_path, names):
    source = read_boxes(write_tiny_yolo(tmp_path / "yolo", names))
    assert source.categories == {1: "cat", 2: "dog"}
    a = next(i for i in source.images if i.path.stem == "a")
    np.testing.assert_allclose(a.boxes, [[20, 15, 60, 25], [16, 8, 24, 12]], atol=1e-4)
    assert a.labels.tolist() == [1, 2] and a.split == "train"
    assert len(next(i for i in source.images if i.path.stem == "b").boxes) == 0


def write_tiny_voc(root, size=True):
    draw(root / "JPEGImages" / "p1.png", 50, 40, [])
    size_xml = "<size><width>50</width><height>40</height><depth>3</depth></size>" if size else ""
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "p1.xml").write_text(
        f"<annotation><filename>p1.png</filename>{size_xml}"
        "<object><name>zebra</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax>"
        "<ymax>20</ymax></bndbox></object>"
        "<object><name>ant</name><difficult>1</difficult><bndbox><xmin>11</xmin><ymin>5</ymin><xmax>30</xmax>"
        "<ymax>35</ymax></bndbox></object></annotation>")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "val.txt").write_text("p1\n")
    return root


def test_voc_reads_one_based_boxes_difficult_as_crowd_and_sorted_names(tmp_path):
    source = read_boxes(write_tiny_voc(tmp_path / "voc"))
    assert source.categories == {1: "ant", 2: "zebra"}  # sorted names, not order of appearance
    image = source.images[0]
    np.testing.assert_allclose(image.boxes, [[0, 0, 10, 20], [10, 4, 30, 35]])
    assert image.labels.tolist() == [2, 1] and image.iscrowd.tolist() == [False, True] and image.split == "val"


def test_unknown_layout_and_missing_path_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixelforgeError, match="no detection layout"):
        read_boxes(tmp_path / "empty")
    with pytest.raises(PixelforgeError, match="no such file"):
        read_boxes(tmp_path / "nope")


def test_make_box_splits_is_seeded_and_keeps_given_splits(tiny_coco):
    source = read_boxes(tiny_coco)
    images = [*source.images] + [source.images[0].__class__(**{**vars(source.images[0]), "split": None,
                                                                 "image_id": 100 + k}) for k in range(10)]
    mixed = BoxSource(images, source.categories, "mem")
    first, again = make_box_splits(mixed, 0.2, 0.0, seed=1), make_box_splits(mixed, 0.2, 0.0, seed=1)
    assert [i.split for i in first.images] == [i.split for i in again.images]
    assert [i.split for i in first.images[:3]] == ["train", "train", "val"]  # given splits kept
    assert None not in {i.split for i in first.images}


def test_make_box_splits_draws_val_from_train_when_there_is_none(tiny_coco):
    source = read_boxes(tiny_coco)
    only_train = BoxSource([i for i in source.images if i.split == "train"] * 5, source.categories, "mem")
    split = make_box_splits(only_train, val_fraction=0.2, test_fraction=0.1, seed=0)
    counts = Counter(i.split for i in split.images)
    assert counts == {"train": 7, "val": 2, "test": 1}


def test_yolo_split_folder_that_does_not_exist_names_the_yaml(tmp_path):
    root = write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"])
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/nope", "names": ["cat"]}))
    with pytest.raises(PixelforgeError, match=r"data\.yaml: train: .*nope does not exist"):
        read_boxes(root)


def test_yolo_roboflow_export_with_parent_relative_folders(tmp_path):
    """Roboflow's data.yaml sits beside train/ and valid/ but says `train: ../train/images`; Ultralytics drops the
    `../` when that path does not exist, so such exports train there as they do here."""
    root = tmp_path / "roboflow"
    for folder, stem in (("train", "a"), ("valid", "b")):
        draw(root / folder / "images" / f"{stem}.jpg", 80, 40, [])
        (root / folder / "labels").mkdir(parents=True)
        (root / folder / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "../train/images", "val": "../valid/images", "nc": 1,
                                                    "names": ["cat"]}))
    source = read_boxes(root)
    assert sorted((i.path.stem, i.split, len(i.boxes)) for i in source.images) == [("a", "train", 1), ("b", "val", 1)]


def test_coco_and_yolo_lists_written_on_windows_find_their_images(tmp_path):
    """`images\\train\\a.png` (a COCO file_name or a line of a YOLO image list made on Windows) is one name on POSIX:
    the image was reported missing."""
    draw(tmp_path / "coco" / "images" / "train" / "x.png", 32, 32, [(1, 2, 2, 8, 8)])
    data = {"images": [{"id": 1, "file_name": "train\\x.png"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 8, 8]}],
            "categories": [{"id": 1, "name": "cat"}]}
    (tmp_path / "coco" / "annotations").mkdir()
    (tmp_path / "coco" / "annotations" / "train.json").write_text(json.dumps(data))
    image = read_boxes(tmp_path / "coco").images[0]
    assert image.path == tmp_path / "coco" / "images" / "train" / "x.png" and len(image.boxes) == 1

    root = tmp_path / "yolo"
    draw(root / "images" / "train" / "a.jpg", 80, 40, [])
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.25\n")
    (root / "train.txt").write_text("images\\train\\a.jpg\r\n")
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "train.txt", "val": "train.txt", "names": ["cat"]}))
    source = read_boxes(root)
    assert {(i.path.name, len(i.boxes)) for i in source.images} == {("a.jpg", 1)}


def test_exif_rotated_image_size_is_upright(tmp_path):
    from pixelforge.data.boxes.source import image_size

    img = Image.new("RGB", (30, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == (20, 30)


def test_voc_trainval_list_becomes_train_when_there_is_no_train_list(tmp_path):
    root = write_tiny_voc(tmp_path / "voc")
    (root / "ImageSets" / "Main" / "val.txt").rename(root / "ImageSets" / "Main" / "trainval.txt")
    assert read_boxes(root).images[0].split == "train"


def test_yolo_segment_lines_become_outlines_for_instance_segmentation(tmp_path):
    """Ultralytics' segment format: `class x1 y1 x2 y2 x3 y3 ...`; the polygon is kept (in pixels) beside its box."""
    from pixelforge.data.boxes.dataset import rasterize

    root = write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"])
    (root / "labels" / "train" / "a.txt").write_text("0 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75\n1 0.5 0.5 0.2 0.2\n")
    a = next(i for i in read_boxes(root).images if i.path.stem == "a")
    np.testing.assert_allclose(a.boxes, [[20, 10, 60, 30], [32, 16, 48, 24]], atol=1e-4)
    assert a.segmentations[0] == [[20.0, 10.0, 60.0, 10.0, 60.0, 30.0, 20.0, 30.0]]
    assert a.segmentations[1] == []  # a box line has no outline
    assert 700 <= rasterize(a.segmentations[0], 40, 80).sum() <= 900  # the 40 x 20 square
    b = next(i for i in read_boxes(root).images if i.path.stem == "b")
    assert b.segmentations is None


def test_yolo_boxes_alone_carry_no_outlines(tmp_path):
    source = read_boxes(write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"]))
    assert all(image.segmentations is None for image in source.images)
