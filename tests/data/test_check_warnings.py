"""`data check` for every layout: images far smaller than --img-size are listed, symbolic links that point nowhere
are reported (class folders, mask folders, YOLO folders, COCO file names), a CSV naming a missing file says so."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixelforge.data.boxes.check import check_boxes
from pixelforge.data.check import check_dataset
from pixelforge.data.masks.check import check_masks
from tests.data.boxes.conftest import write_tiny_coco
from tests.data.boxes.test_readers import write_tiny_yolo
from tests.data.masks.conftest import write_pair


def _class_folders(root, size=20):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (size, size + 4), (40 * i, 200 if label == "a" else 0, 0)).save(root / label / f"{i}.png")
    return root


def test_images_far_smaller_than_the_training_size_are_listed(tmp_path):
    root = _class_folders(tmp_path / "tiny", size=20)
    assert len(check_dataset(str(root), img_size=224).tiny_images) == 4  # 20 px trained at 224: 11x upsampling
    assert check_dataset(str(root), img_size=64).tiny_images == []  # 3.2x: fine
    first = check_dataset(str(root), img_size=224).tiny_images[0]
    assert first.endswith(": 20x24")
    boxes = check_boxes(write_tiny_coco(tmp_path / "coco"), img_size=224)  # 40-64 px images
    assert len(boxes.tiny_images) == 3 and check_boxes(tmp_path / "coco", img_size=128).tiny_images == []


def test_cli_warns_with_the_task_default_size(tmp_path):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    root = _class_folders(tmp_path / "tiny", size=20)
    result = CliRunner().invoke(app, ["data", "check", str(root)])
    assert result.exit_code == 0
    assert "4 image(s) with a shorter side under 56 px" in result.output and "--img-size 224" in result.output


def test_broken_links_are_reported_in_mask_and_yolo_folders(tmp_path):
    masks = tmp_path / "masks"
    for i in range(3):
        write_pair(masks / "images" / f"{i}.png", masks / "masks" / f"{i}.png", i)
    (masks / "images" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    report = check_masks(masks)
    assert len(report.broken_links) == 1 and "gone.png: a symbolic link that points nowhere" in report.broken_links[0]
    assert report.problem_count == 1 and report.total == 3

    yolo = write_tiny_yolo(tmp_path / "yolo", ["cat", "dog"])
    image_dir = next(p.parent for p in yolo.rglob("*.png"))
    (image_dir / "gone.png").symlink_to(tmp_path / "nowhere.png")
    boxes = check_boxes(yolo)
    assert any("gone.png: a symbolic link that points nowhere" in m for m in boxes.missing_files)


def test_coco_file_name_that_is_a_broken_link_says_so(tmp_path):
    coco = write_tiny_coco(tmp_path / "coco")
    image = coco / "images" / "train" / "a.png"
    image.unlink()
    image.symlink_to(tmp_path / "moved-disk" / "a.png")
    report = check_boxes(coco)
    assert len(report.missing_files) == 1 and "a symbolic link that points nowhere" in report.missing_files[0]


def test_csv_naming_a_missing_file_is_reported_not_raised(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "there.png")
    (tmp_path / "labels.csv").write_text("path,label\nthere.png,cat\nmissing.png,dog\n")
    report = check_dataset(str(tmp_path / "labels.csv"))
    assert len(report.unreadable) == 1 and report.unreadable[0].endswith("missing.png: file not found")


def test_segmentation_with_only_background_is_a_problem(tmp_path):
    root = tmp_path / "bg"
    for i in range(2):
        write_pair(root / "images" / f"{i}.png", root / "masks" / f"{i}.png", i,
                   mask_fn=lambda mask, path: Image.fromarray(np.zeros_like(mask, np.uint8)).save(path))
    (root / "classes.json").write_text('["background"]')
    report = check_masks(root)
    assert report.single_class == ["background"] and report.problem_count >= 1
