"""The built-in shapes set is valid, tight and deterministic; conversions between formats keep boxes and names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelforge.data.boxes.convert import convert_boxes
from pixelforge.data.boxes.dataset import rasterize
from pixelforge.data.boxes.shapes import write_shapes_detect, write_shapes_instance
from pixelforge.data.boxes.source import read_boxes
from pixelforge.errors import PixelforgeError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_shapes_detect(root / "detect", seed=3), write_shapes_instance(root / "instance", seed=3)


def test_shapes_detect_is_valid_coco_with_the_promised_counts(shapes):
    detect, _ = shapes
    for split in ("train", "val", "test"):
        data = json.loads((detect / "annotations" / f"{split}.json").read_text())
        assert {c["id"]: c["name"] for c in data["categories"]} == {1: "circle", 2: "square", 3: "triangle", 4: "star"}
        assert all((detect / "images" / i["file_name"]).exists() and i["file_name"].startswith(split + "/")
                   for i in data["images"])
    source = read_boxes(detect)
    assert [len(source.split(s)) for s in ("train", "val", "test")] == [240, 60, 60]
    counts = [len(i.boxes) for i in source.images]
    assert min(counts) >= 1 and max(counts) <= 5 and sum(counts) > 600
    assert set(np.concatenate([i.labels for i in source.images]).tolist()) == {1, 2, 3, 4}
    sizes = {(i.width, i.height) for i in source.images}
    assert len(sizes) > 100 and min(min(s) for s in sizes) >= 128 and max(max(s) for s in sizes) <= 256
    sides = np.sqrt(np.concatenate([(i.boxes[:, 2] - i.boxes[:, 0]) * (i.boxes[:, 3] - i.boxes[:, 1])
                                    for i in source.images]))
    assert sides.min() < 16 and sides.max() > 96  # small and large objects
    assert source.images[0].segmentations is None


def test_shapes_boxes_tightly_bound_the_drawn_pixels(shapes):
    from PIL import Image

    detect, instance = shapes
    boxes_only, with_masks = read_boxes(detect), read_boxes(instance)
    overlapping = 0
    for plain, image in list(zip(boxes_only.images, with_masks.images))[:60]:
        # Same seed, same scene: the two variants differ only in the stored masks.
        assert np.array_equal(np.asarray(Image.open(plain.path)), np.asarray(Image.open(image.path)))
        np.testing.assert_array_equal(plain.boxes, image.boxes)
        pixels = np.asarray(Image.open(image.path)).astype(np.float32)
        masks = [rasterize(s, image.height, image.width).astype(bool) for s in image.segmentations]
        for box, mask in zip(image.boxes, masks):
            ys, xs = np.nonzero(mask)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            inside = pixels[mask]
            # An object is one flat colour plus noise: its pixels are those of one drawn shape.
            assert np.median(np.abs(inside - np.median(inside, 0))) < 30
        overlapping += any((a & b).any() or _boxes_overlap(image.boxes[i], image.boxes[j])
                           for i, a in enumerate(masks) for j, b in enumerate(masks) if i < j)
    assert overlapping > 0


def _boxes_overlap(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _by_name(source):
    return {i.path.name: i for i in source.images}


def _assert_same_boxes(a, b):
    names_a, names_b = _by_name(a), _by_name(b)
    assert names_a.keys() == names_b.keys()
    for name, image in names_a.items():
        other = names_b[name]
        assert (image.width, image.height, image.split) == (other.width, other.height, other.split)
        scale = max(image.width, image.height)
        assert np.abs(image.boxes - other.boxes).max(initial=0) / scale < 1e-3
        assert [a.categories[int(c)] for c in image.labels] == [b.categories[int(c)] for c in other.labels]


@pytest.mark.parametrize("via", ["yolo", "voc"])
def test_round_trip_through_another_format_keeps_boxes_and_categories(tiny_coco, tmp_path, via):
    original = read_boxes(tiny_coco)
    convert_boxes(tiny_coco, tmp_path / via, to=via)
    convert_boxes(tmp_path / via, tmp_path / "back", to="coco")
    middle, back = read_boxes(tmp_path / via), read_boxes(tmp_path / "back")
    assert sorted(middle.categories.values()) == sorted(back.categories.values()) == ["cat", "dog"]
    _assert_same_boxes(original, middle)
    _assert_same_boxes(original, back)


def test_round_trip_on_the_shapes_set(shapes, tmp_path):
    detect, _ = shapes
    convert_boxes(detect, tmp_path / "yolo", to="yolo")
    _assert_same_boxes(read_boxes(detect), read_boxes(tmp_path / "yolo"))


def test_convert_keeps_crowd_in_voc_and_leaves_it_out_of_yolo(tmp_path):
    from .conftest import write_tiny_coco

    root = write_tiny_coco(tmp_path / "coco")
    file = root / "annotations" / "train.json"
    data = json.loads(file.read_text())
    data["annotations"][0]["iscrowd"] = 1
    file.write_text(json.dumps(data))
    voc = read_boxes(convert_boxes(root, tmp_path / "voc", to="voc"))
    assert _by_name(voc)["a.png"].iscrowd.tolist() == [True, False]
    yolo = read_boxes(convert_boxes(root, tmp_path / "yolo", to="yolo"))
    assert len(_by_name(yolo)["a.png"].boxes) == 1


def test_an_interrupted_convert_leaves_nothing_that_reads_as_a_dataset(shapes, tmp_path, monkeypatch):
    """Ctrl-C after annotations/train.json left a COCO folder that read as a dataset without a val split."""
    from pixelforge.data.boxes import coco

    detect, _ = shapes
    made, real = [], coco.coco_dict

    def cut_at_the_second_split(*args, **kwargs):
        made.append(1)
        if len(made) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(coco, "coco_dict", cut_at_the_second_split)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        convert_boxes(detect, out, to="coco")
    assert list(tmp_path.iterdir()) == []  # neither the output nor a staging copy
    monkeypatch.undo()
    convert_boxes(detect, out, to="coco")  # the same command again
    assert {image.split for image in read_boxes(out).images} == {"train", "val", "test"}


def test_convert_refuses_a_non_empty_output_and_unknown_formats(tiny_coco, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(PixelforgeError, match="not empty"):
        convert_boxes(tiny_coco, tmp_path / "out", to="yolo")
    with pytest.raises(PixelforgeError, match="unknown format"):
        convert_boxes(tiny_coco, tmp_path / "new", to="labelme")


def test_polygon_outlines_survive_a_round_trip_through_yolo(tmp_path):
    """One polygon an object goes out in YOLO's segment format and comes back; an RLE object goes as its box."""
    from tests.data.boxes.conftest import draw

    draw(tmp_path / "coco" / "a.png", 80, 40, [])
    square = [20.0, 10.0, 60.0, 10.0, 60.0, 30.0, 20.0, 30.0]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 40}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 10, 40, 20], "iscrowd": 0,
                             "area": 800, "segmentation": [square]}]}
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(coco))
    back = read_boxes(convert_boxes(tmp_path / "coco" / "annotations.json", tmp_path / "yolo", to="yolo"))
    np.testing.assert_allclose(back.images[0].segmentations[0][0], square, atol=1e-3)
    np.testing.assert_allclose(back.images[0].boxes, [[20, 10, 60, 30]], atol=1e-3)


def test_convert_says_what_the_target_format_cannot_hold(tmp_path):
    """Masks an instance set carries were dropped without a word when converted to YOLO or VOC."""
    from typer.testing import CliRunner

    from pixelforge.cli import app
    from tests.data.boxes.conftest import draw

    draw(tmp_path / "coco" / "a.png", 80, 40, [])
    square, left, right = ([20.0, 10.0, 60.0, 10.0, 60.0, 30.0, 20.0, 30.0], [2.0, 2.0, 8.0, 2.0, 8.0, 8.0],
                           [12.0, 2.0, 18.0, 2.0, 18.0, 8.0])
    objects = [([20, 10, 40, 20], [square], 0), ([2, 2, 16, 6], [left, right], 0), ([60, 30, 10, 5], [], 1)]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 40}],
            "categories": [{"id": 1, "name": "cat"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": box, "iscrowd": crowd,
                             "area": box[2] * box[3], "segmentation": seg}
                            for i, (box, seg, crowd) in enumerate(objects)]}
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(coco))
    said = {to: [] for to in ("yolo", "voc", "coco")}
    for to, lines in said.items():
        convert_boxes(tmp_path / "coco" / "annotations.json", tmp_path / f"as-{to}", to=to, report=lines.append)
    assert said["yolo"] == ["1 crowd region(s) left out: YOLO labels cannot mark a region to ignore",
                            "1 of 2 object masks kept as boxes only (an RLE or several polygons; YOLO's segment "
                            "format holds one polygon an object): --to coco keeps them"]
    assert said["voc"] == ["2 object masks not kept: VOC XML holds boxes (--to coco keeps them)"]
    assert said["coco"] == []
    done = CliRunner().invoke(app, ["data", "convert", str(tmp_path / "coco" / "annotations.json"), "--to", "voc",
                                    "--out", str(tmp_path / "cli")])
    assert done.exit_code == 0 and "note: 2 object masks not kept" in done.stderr
