"""`data check --task detect` lists every problem of a broken dataset by kind; `data preview` draws boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.boxes.check import BoxCheckReport, check_boxes, print_box_report
from pixelforge.viz.box_preview import write_box_preview

from .conftest import write_tiny_coco
from .test_readers import write_tiny_voc, write_tiny_yolo


def _broken_coco(root):
    write_tiny_coco(root)
    file = root / "annotations" / "train.json"
    data = json.loads(file.read_text())
    data["images"].append({"id": 10, "file_name": "train/gone.png", "width": 8, "height": 8})
    data["images"].append({"id": 11, "file_name": "train/garbage.png", "width": 8, "height": 8})
    (root / "images" / "train" / "garbage.png").write_bytes(b"\x89PNG not really")
    data["images"][1]["width"] = 41  # b.png is 40 wide
    extra = [
        {"id": 20, "image_id": 1, "category_id": 1, "bbox": [50, 40, 30, 20]},  # reaches outside 64x48
        {"id": 21, "image_id": 1, "category_id": 1, "bbox": [5, 5, 0, 7]},  # zero width
        {"id": 22, "image_id": 1, "category_id": 9, "bbox": [1, 1, 2, 2]},  # unknown category
        {"id": 23, "image_id": 1, "category_id": 0, "bbox": [1, 1, 2, 2]},  # background id
        {"id": 24, "image_id": 99, "category_id": 1, "bbox": [1, 1, 2, 2]},  # no such image
        {"id": 25, "image_id": 2, "category_id": 1},  # no bbox
    ]
    data["annotations"] += extra
    file.write_text(json.dumps(data))
    return root, file


def test_check_lists_each_problem_with_its_file_and_annotation_id(tmp_path):
    root, file = _broken_coco(tmp_path / "broken")
    report = check_boxes(root)
    assert report.format == "coco" and report.images == 5 and report.fatal == []
    assert len(report.out_of_image) == 1 and f"{file}: annotation 20" in report.out_of_image[0]
    assert len(report.degenerate) == 1 and "annotation 21" in report.degenerate[0]
    assert len(report.unknown_category) == 2
    assert "annotation 22" in report.unknown_category[0] and "annotation 23" in report.unknown_category[1]
    assert len(report.missing_image_ref) == 1 and "annotation 24" in report.missing_image_ref[0]
    assert len(report.malformed) == 1 and "annotation 25 lacks 'bbox'" in report.malformed[0]
    assert len(report.missing_files) == 1 and "gone.png" in report.missing_files[0]
    assert len(report.unreadable) == 1 and "garbage.png" in report.unreadable[0]
    assert len(report.size_mismatch) == 1
    assert "b.png: annotated as 41x56 but the file is 40x56" in report.size_mismatch[0]
    assert report.problem_count == 9
    assert report.empty_images == 3  # c.png, gone.png, garbage.png: counted, not problems
    assert report.per_class == {"cat": 3, "dog": 2} and report.per_split["train"] == {"cat": 3, "dog": 2}
    assert report.images_per_split == {"train": 4, "val": 1}
    json.dumps(report.to_json())  # serialisable for --json
    assert report.to_json()["problem_count"] == 9


def test_check_of_a_clean_set_counts_sizes_and_finds_nothing(tiny_coco, capsys):
    report = check_boxes(tiny_coco)
    assert report.problem_count == 0 and report.annotations == 3
    # a: 20x10 (200 px²) and 25x24 (600), b: 12x30 (360): all small by COCO's 32² threshold
    assert report.size_buckets == {"small": 3, "medium": 0, "large": 0}
    assert sum(report.size_histogram["counts"]) == 3 and report.size_histogram["counts"][2] == 2  # 16-32 px sides
    print_box_report(report)
    out = capsys.readouterr().out
    assert "no problems found" in out and "cat" in out


def test_report_heading_keeps_a_long_path_on_one_line(tiny_coco, capsys):
    # As the table's title, the heading was wrapped to the table's width: "../shared/data/hymenoptera/t" + "rain".
    from dataclasses import replace

    report = replace(check_boxes(tiny_coco), origin="../" + "a-long-folder-name/" * 4 + "train")
    print_box_report(report)
    assert capsys.readouterr().out.splitlines()[0] == f"{report.origin} (coco): 3 images, 3 boxes"


def test_check_lists_yolo_and_voc_mistakes_instead_of_raising(tmp_path):
    yolo = write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"])
    (yolo / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.1 0.1\n0 0.5 1.5 0.1 0.1\nx\n")
    report = check_boxes(yolo)
    assert report.annotations == 1 and len(report.unknown_category) == 1 and "a.txt:2" in report.unknown_category[0]
    assert sorted(m.split(": ")[0][-5:] for m in report.malformed) == ["txt:3", "txt:4"]
    voc = write_tiny_voc(tmp_path / "voc", size=False)
    report = check_boxes(voc)
    assert not report.malformed  # no <size>: the image file gives it
    assert report.images == 1 and report.annotations == 2


def test_check_reports_an_unreadable_annotation_file_without_crashing(tmp_path, capsys):
    root = write_tiny_coco(tmp_path / "coco")
    (root / "annotations" / "train.json").write_text("[1, 2")
    report = check_boxes(root)
    assert report.problem_count == 1 and "train.json: not valid JSON" in report.fatal[0]
    print_box_report(report)
    assert "1 problem(s)" in capsys.readouterr().out


def test_print_report_names_problems(tmp_path, capsys):
    root, _ = _broken_coco(tmp_path / "broken")
    print_box_report(check_boxes(root))
    out = capsys.readouterr().out
    assert "annotation 20" in out and "9 problem(s)" in out


def test_preview_draws_boxes_in_class_colours(tiny_coco, tmp_path):
    out = write_box_preview(tiny_coco, tmp_path / "p" / "preview.png", augment="none", img_size=64, count=4)
    grid = np.asarray(Image.open(out).convert("RGB"))
    # two training images: a 2-column grid of 64 px tiles with 4 px padding
    assert grid.shape == (72, 140, 3)
    red = (grid[..., 0] > 200) & (grid[..., 1] < 80)  # cat = first palette colour (#e6194b)
    green = (grid[..., 1] > 150) & (grid[..., 0] < 100)  # dog = second (#3cb44b)
    assert red.any() and green.any()
    # a.png at 64 px is its own size: the cat box outline runs along x = 4..24 at y = 6 inside the first tile
    ys, xs = np.nonzero(red[:, :70])
    assert abs(xs.min() - (4 + 4)) <= 1 and abs(ys.min() - (4 + 6)) <= 1


@pytest.mark.parametrize("augment", ["standard", "strong"])
def test_preview_runs_every_preset_on_instance_data(tmp_path, augment):
    from pycocotools import mask as mask_utils

    root = write_tiny_coco(tmp_path / "coco")
    file = root / "annotations" / "train.json"
    data = json.loads(file.read_text())
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        block = np.zeros({1: (48, 64), 2: (56, 40)}[ann["image_id"]], np.uint8)  # a.png, b.png (h, w)
        block[y:y + h, x:x + w] = 1
        rle = mask_utils.encode(np.asfortranarray(block))
        ann["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    file.write_text(json.dumps(data))
    out = write_box_preview(root, tmp_path / "preview.png", augment=augment, img_size=64, count=2)
    assert out.exists() and Image.open(out).size == (140, 72)
    assert isinstance(check_boxes(root), BoxCheckReport)
