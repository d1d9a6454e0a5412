"""Every labelling mistake a user can make raises one PixelforgeError line naming the file and annotation / line."""

from __future__ import annotations

import json

import pytest
import yaml

from pixelforge.data.boxes.source import read_boxes
from pixelforge.errors import PixelforgeError

from .conftest import write_tiny_coco
from .test_readers import write_tiny_voc, write_tiny_yolo


def _edit_train_json(root, edit):
    file = root / "annotations" / "train.json"
    data = json.loads(file.read_text())
    edit(data)
    file.write_text(json.dumps(data))
    return file


COCO_CASES = {
    "missing images key": (lambda d: d.pop("images"), r"missing COCO key\(s\) 'images'"),
    "missing categories key": (lambda d: d.pop("categories"), r"'categories'"),
    "missing bbox": (lambda d: d["annotations"][1].pop("bbox"), r"annotation 2 lacks 'bbox'"),
    "bad bbox": (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotation 1 has bbox \[1, 2, 3\]"),
    "annotation with category 0 not listed": (lambda d: d["annotations"][0].update(category_id=0),
                                              r"annotation 1 has category_id 0, which is not in 'categories'"),
    "category id not a number": (lambda d: d["annotations"][0].update(category_id="cat"),
                                 r"annotation 1 has category_id 'cat'; it must be an integer"),
    "unknown category": (lambda d: d["annotations"][2].update(category_id=9), r"annotation 3 has category_id 9"),
    "flat polygon": (lambda d: d["annotations"][0].update(segmentation=[4, 6, 24, 6, 24, 16]),
                     r"annotation 1 has segmentation '\[4, 6, 24, 6, 24, 16\]'; it must be a list of polygons"),
    "RLE of another size": (lambda d: d["annotations"][0].update(segmentation={"size": [32, 32], "counts": [9, 1023]}),
                            r"annotation 1 has an RLE of size \[32, 32\] on a 64x48 image"),
    "image id listed twice": (lambda d: d["images"][1].update(id=1),
                              r"image id 1 is listed twice \('train/a.png' and 'train/b.png'\)"),
    "missing image id": (lambda d: d["annotations"][0].update(image_id=42),
                         r"annotation 1 points at image id 42, which is not in 'images'"),
}


@pytest.mark.parametrize("case", COCO_CASES)
def test_coco_mistakes_name_the_file_and_annotation(tmp_path, case):
    edit, pattern = COCO_CASES[case]
    root = write_tiny_coco(tmp_path / "coco")
    file = _edit_train_json(root, edit)
    with pytest.raises(PixelforgeError, match=pattern) as info:
        read_boxes(root)
    message = str(info.value)
    assert str(file) in message and "\n" not in message


def test_coco_invalid_json_names_the_file(tmp_path):
    root = write_tiny_coco(tmp_path / "coco")
    (root / "annotations" / "val.json").write_text("{not json")
    with pytest.raises(PixelforgeError, match=r"val\.json: not valid JSON"):
        read_boxes(root)


def test_coco_missing_image_file_names_the_image_and_its_id(tmp_path):
    root = write_tiny_coco(tmp_path / "coco")
    (root / "images" / "train" / "b.png").unlink()
    with pytest.raises(PixelforgeError, match=r"b\.png: image file not found \(image id 2 in .*train\.json\)"):
        read_boxes(root)


YOLO_CASES = {
    "outside [0, 1]": ("0 0.5 0.5 1.5 0.2", r"a\.txt:2: coordinates .* outside \[0, 1\]"),
    "negative": ("1 -0.1 0.5 0.1 0.2", r"a\.txt:2: coordinates"),
    "unknown class": ("5 0.5 0.5 0.1 0.1", r"a\.txt:2: class index 5 is not in names \(0\.\.1\)"),
    "too few numbers": ("0 0.5 0.5", r"a\.txt:2: malformed label line '0 0\.5 0\.5'"),
    "not a number": ("cat 0.5 0.5 0.1 0.1", r"a\.txt:2: malformed label line"),
    "fractional class": ("0.5 0.5 0.5 0.1 0.1", r"a\.txt:2: malformed"),
}


@pytest.mark.parametrize("case", YOLO_CASES)
def test_yolo_mistakes_name_the_label_file_and_line(tmp_path, case):
    line, pattern = YOLO_CASES[case]
    root = write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"])
    label = root / "labels" / "train" / "a.txt"
    label.write_text("0 0.5 0.5 0.2 0.2\n" + line + "\n")
    with pytest.raises(PixelforgeError, match=pattern) as info:
        read_boxes(root)
    assert str(label) in str(info.value)


def test_yolo_without_names_names_the_yaml(tmp_path):
    root = write_tiny_yolo(tmp_path / "yolo", ["cat"])
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train"}))
    with pytest.raises(PixelforgeError, match=r"data\.yaml: no class names"):
        read_boxes(root / "data.yaml")


def test_yolo_names_keyed_by_name_names_the_yaml(tmp_path):
    """`names: {cat: 0}` (the mapping written the wrong way round) used to end in a ValueError traceback."""
    root = write_tiny_yolo(tmp_path / "yolo", {"cat": 0, "dog": 1})
    with pytest.raises(PixelforgeError, match=r"data\.yaml: names must map class indices to names .*\['cat', 'dog'\]"):
        read_boxes(root)


def test_voc_without_size_takes_the_image_s_size_and_names_the_xml_when_it_cannot(tmp_path):
    """labelImg writes no <size> (or 0 x 0) for some images; the image file gives it, as it does to torchvision."""
    root = write_tiny_voc(tmp_path / "voc", size=False)
    image = read_boxes(root).images[0]
    assert (image.width, image.height) == (50, 40) and len(image.boxes) == 2
    (root / "JPEGImages" / "p1.png").write_bytes(b"not an image")
    with pytest.raises(PixelforgeError, match=r"p1\.xml: no <size>.*cannot be opened"):
        read_boxes(root)


def test_voc_object_without_box_and_bad_xml_name_the_xml(tmp_path):
    root = write_tiny_voc(tmp_path / "voc")
    xml = root / "Annotations" / "p1.xml"
    xml.write_text(xml.read_text().replace("<xmax>10</xmax>", ""))
    with pytest.raises(PixelforgeError, match=r"p1\.xml: object #0 lacks"):
        read_boxes(root)
    xml.write_text("<annotation>")
    with pytest.raises(PixelforgeError, match=r"p1\.xml: not valid XML"):
        read_boxes(root)


def test_voc_missing_image_names_the_xml(tmp_path):
    root = write_tiny_voc(tmp_path / "voc")
    (root / "JPEGImages" / "p1.png").unlink()
    with pytest.raises(PixelforgeError, match=r"p1\.png: image file not found \(named by .*p1\.xml\)"):
        read_boxes(root)


def test_unreadable_image_is_dropped_by_the_dataset_with_its_name(tmp_path):
    from pixelforge.data.boxes.dataset import BoxDataset

    root = write_tiny_coco(tmp_path / "coco")
    (root / "images" / "train" / "b.png").write_bytes(b"not a png")
    source = read_boxes(root)
    dataset = BoxDataset(source.split("train"), source.category_ids, img_size=32)
    errors = dataset.preload()
    assert len(dataset) == 1 and len(errors) == 1 and "b.png" in errors[0]
