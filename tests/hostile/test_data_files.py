"""Hostile images and label files: every one is named with its problem by `data check` (listed, never a crash), or
refused by the reader with one line naming the file. Each case id is a row of docs/reliability.md."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.boxes.conftest import write_tiny_coco
from tests.data.boxes.test_readers import write_tiny_yolo
from tests.data.masks.conftest import write_pair


def _folders(root: Path) -> Path:
    """Two classes of three small, distinct photos-to-be: the good part of every class-folder case."""
    rng = np.random.default_rng(0)
    for label in ("ant", "bee"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), np.uint8)).save(root / label / f"{i}.png")
    return root


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and which holds no pixel data: a decompression-bomb probe."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def zero_byte(root):
    (_folders(root) / "ant" / "empty.jpg").write_bytes(b"")
    return root, "empty.jpg"


def truncated_jpeg(root):
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(buffer, "JPEG")
    (_folders(root) / "ant" / "cut.jpg").write_bytes(buffer.getvalue()[:300])
    return root, "cut.jpg"


def text_named_jpg(root):
    (_folders(root) / "bee" / "notes.jpg").write_text("this is not an image")
    return root, "notes.jpg"


def html_named_png(root):
    (_folders(root) / "bee" / "page.png").write_text("<html><body>404 Not Found</body></html>")
    return root, "page.png"


def decompression_bomb(root):
    (_folders(root) / "ant" / "bomb.png").write_bytes(_png_header_only(60000, 60000))
    return root, "bomb.png"


def broken_symlink(root):
    (_folders(root) / "ant" / "moved.jpg").symlink_to(root / "gone" / "moved.jpg")
    return root, "moved.jpg"


def exact_duplicate_across_splits(root):
    for split in ("train", "val"):
        _folders(root / split)
    return root, "leakage"


def class_folder_without_images(root):
    (_folders(root) / "wasp").mkdir()  # its photos are .heic, or were moved: no class comes of it
    (root / "wasp" / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (root / "__MACOSX" / "ant").mkdir(parents=True)  # a Mac zip's resource forks: never a class, never listed
    return root, "wasp"


def class_folder_of_notes(root):
    (_folders(root) / "notes").mkdir()  # no image and nothing in an unread format: the plain "no images" line
    (root / "notes" / "readme.txt").write_text("to do")
    return root


def heic_only_dataset(root):
    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True)
        (root / name / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")
    return root


def csv_missing_file(root):
    _folders(root)
    (root / "labels.csv").write_text("path,label\nant/0.png,ant\nbee/0.png,bee\nant/missing.png,ant\n")
    return root / "labels.csv", "missing.png: file not found"


LISTED = {  # data check lists the problem with the file's name and exits 1 under --strict
    "zero-byte image": zero_byte,
    "truncated JPEG": truncated_jpeg,
    "text file named .jpg": text_named_jpg,
    "HTML error page saved as .png": html_named_png,
    "decompression-bomb PNG header (60000x60000)": decompression_bomb,
    "symbolic link that points nowhere": broken_symlink,
    "same image in train and val (leakage)": exact_duplicate_across_splits,
    "CSV naming a file that does not exist": csv_missing_file,
    "class folder without images": class_folder_without_images,
}


@pytest.mark.parametrize("build", LISTED.values(), ids=LISTED.keys())
def test_bad_images_are_listed_by_name(build, tmp_path, pixelforge_cli):
    target, name = build(tmp_path / "data")
    result = pixelforge_cli("data", "check", target, "--strict")
    assert result.code == 1, result.err
    assert name in result.out.replace("\n", "")  # rich may wrap a long path
    assert "Traceback" not in result.out + result.err


def odd_modes(root):
    _folders(root)
    Image.fromarray(np.tile(np.linspace(0, 4000, 40, dtype=np.uint16), (40, 1))).save(root / "ant" / "scan16.png")
    Image.new("CMYK", (40, 40), (10, 200, 30, 0)).save(root / "bee" / "print.jpg")
    Image.new("P", (40, 40)).save(root / "bee" / "palette.png", transparency=0)
    Image.new("LA", (40, 40), (120, 128)).save(root / "ant" / "grey_alpha.png")
    return root


def test_odd_colour_modes_are_counted_and_read(tmp_path, pixelforge_cli):
    """16-bit, CMYK, palette with transparency, grey + alpha: read as RGB (16-bit rescaled), reported by mode."""
    from pixelforge.data.images import load_rgb

    root = odd_modes(tmp_path / "modes")
    result = pixelforge_cli("data", "check", root, "--json")
    report = json.loads(result.out)
    assert result.code == 0 and report["unreadable"] == []
    assert report["modes"]["16-bit"] == 1 and report["modes"]["CMYK"] == 1 and report["modes"]["alpha"] == 1
    pixels = np.asarray(load_rgb(root / "ant" / "scan16.png"))
    # 16-bit values above 255 are rescaled, not clipped to white: the gradient survives as a gradient
    assert len(np.unique(pixels)) > 20 and (pixels == 255).mean() < 0.5


def csv_without_label_column(root):
    _folders(root)
    (root / "bad.csv").write_text("file,name\nant/0.png,ant\n")
    return root / "bad.csv", r"bad\.csv: .*label"


def csv_binary_garbage(root):
    root.mkdir(parents=True)
    (root / "bad.csv").write_bytes(b"\xff\xfe\x00path,label\n\x00\x81\x82,ant\n")
    return root / "bad.csv", r"bad\.csv"


def empty_folder(root):
    root.mkdir(parents=True)
    return root, r"no images found"


def images_without_class_folders(root):
    root.mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(root / "a.png")
    return root, r"no class subfolders"


def single_class(root):
    (root / "cats").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 60, 0, 0)).save(root / "cats" / f"{i}.png")
    return root, r"one class.*cats|cats.*one class"


REFUSED = {  # training refuses before a run folder exists: one line naming the file, exit 2
    "CSV without a label column": csv_without_label_column,
    "CSV of binary garbage": csv_binary_garbage,
    "empty folder": empty_folder,
    "images without class folders": images_without_class_folders,
    "a single class": single_class,
    # its photos are HEIC: the line names the format and the fix, not just "no images"
    "a class folder without images": lambda root: (class_folder_without_images(root)[0],
                                                   r"wasp: a class folder with no images pixelforge reads: its 1 "
                                                   r"file\(s\) are HEIC \(e\.g\. IMG_0001\.heic\), a format "
                                                   r"pixelforge does not read; convert them to JPEG or PNG$"),
    "a class folder whose files are not images": lambda root: (class_folder_of_notes(root),
                                                               r"notes: a class folder with no images \(looked for "),
    "a dataset of HEIC photos only": lambda root: (heic_only_dataset(root),
                                                   r"data: holds 2 image\(s\) in formats pixelforge does not read "
                                                   r"\(\.heic, e\.g\. .*\) and none it reads; convert them to JPEG"),
}


@pytest.mark.parametrize("build", REFUSED.values(), ids=REFUSED.keys())
def test_unusable_datasets_are_refused_before_a_run_folder_exists(build, tmp_path, pixelforge_cli):
    import re

    data, pattern = build(tmp_path / "data")
    out = tmp_path / "run"
    result = pixelforge_cli("train", "--data", data, "--out", out, "--model", "simple_cnn", "--weights", "none",
                            "--epochs", "1", "--quiet")
    assert result.code == 2 and re.search(pattern, result.error_line), result.err
    assert not out.exists()  # nothing half-written


def test_a_class_whose_every_image_is_broken_is_refused_not_trained_as_a_class_never_seen(tmp_path, pixelforge_cli):
    root = _folders(tmp_path / "data")
    (root / "wasp").mkdir()
    for i in range(3):  # the files are there (so the split has them), but none decodes
        (root / "wasp" / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    result = pixelforge_cli("train", "--data", root, "--out", tmp_path / "run", "--model", "simple_cnn", "--weights",
                            "none", "--epochs", "1", "--img-size", "32", "--quiet")
    assert result.code == 2 and "class 'wasp' has no readable training image" in result.err.splitlines()[-1]
    assert "wasp/" in result.err.splitlines()[-1]


def test_a_val_split_whose_every_image_is_broken_is_refused_in_one_line(tmp_path, pixelforge_cli):
    root = tmp_path / "data"
    _folders(root / "train")
    for label in ("ant", "bee"):
        (root / "val" / label).mkdir(parents=True)
        (root / "val" / label / "v.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(40))
    result = pixelforge_cli("train", "--data", root, "--out", tmp_path / "run", "--model", "simple_cnn", "--weights",
                            "none", "--epochs", "1", "--img-size", "32", "--quiet")
    assert result.code == 2 and "no readable image in the val split" in result.err.splitlines()[-1], result.err


def coco_truncated_json(root):
    write_tiny_coco(root)
    path = root / "annotations" / "train.json"
    path.write_text(path.read_text()[:-40])
    return root, "train.json"


def coco_negative_box(root):
    write_tiny_coco(root)
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["bbox"] = [10, 10, -5, 8]
    path.write_text(json.dumps(data))
    return root, "zero or negative"


def coco_unknown_category(root):
    write_tiny_coco(root)
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    return root, "99"


def coco_annotation_for_missing_image(root):
    write_tiny_coco(root)
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["image_id"] = 12345
    path.write_text(json.dumps(data))
    return root, "12345"


def coco_wrong_image_size(root):
    write_tiny_coco(root)
    path = root / "annotations" / "train.json"
    data = json.loads(path.read_text())
    data["images"][0]["width"] = 640
    path.write_text(json.dumps(data))
    return root, "annotated as 640x48"


def yolo_short_line(root):
    write_tiny_yolo(root, ["cat", "dog"])
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5\n")
    return root, "a.txt:1"


def yolo_outside_unit_square(root):
    write_tiny_yolo(root, ["cat", "dog"])
    (root / "labels" / "train" / "a.txt").write_text("0 1.5 0.5 0.2 0.2\n")
    return root, "a.txt:1"


def yolo_class_out_of_range(root):
    write_tiny_yolo(root, ["cat", "dog"])
    (root / "labels" / "train" / "a.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    return root, "a.txt:1"


BOXES = {  # data check --task detect names the file (and annotation or line) of each
    "COCO json cut off mid-file": coco_truncated_json,
    "COCO box with negative width": coco_negative_box,
    "COCO unknown category id": coco_unknown_category,
    "COCO annotation for an image not listed": coco_annotation_for_missing_image,
    "COCO width/height unlike the file's": coco_wrong_image_size,
    "YOLO line with three numbers": yolo_short_line,
    "YOLO coordinates outside [0, 1]": yolo_outside_unit_square,
    "YOLO class index beyond names": yolo_class_out_of_range,
}


@pytest.mark.parametrize("build", BOXES.values(), ids=BOXES.keys())
def test_bad_box_annotations_are_listed_by_file(build, tmp_path, pixelforge_cli):
    target, name = build(tmp_path / "boxes")
    result = pixelforge_cli("data", "check", target, "--task", "detect", "--strict")
    assert result.code == 1 and name in result.out.replace("\n", ""), result.out + result.err
    assert "Traceback" not in result.out + result.err


def _mask_layout(root: Path) -> Path:
    for i in range(3):
        write_pair(root / "images" / f"{i}.png", root / "masks" / f"{i}.png", i)
    (root / "classes.json").write_text('["background", "red", "green"]')
    return root


def mask_wrong_size(root):
    _mask_layout(root)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "1.png")
    return root, "1.png: mask 10x10"


def mask_in_colour(root):
    _mask_layout(root)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8)).save(root / "masks" / "2.png")
    return root, "2.png"


def mask_ids_outside_classes(root):
    _mask_layout(root)
    Image.fromarray(np.full((40, 48), 9, np.uint8)).save(root / "masks" / "0.png")
    return root, "class id(s) 9"


def image_without_mask(root):
    _mask_layout(root)
    (root / "masks" / "0.png").unlink()
    return root, "0.png: image without mask"


def mask_saved_as_jpeg(root):
    _mask_layout(root)
    mask = np.asarray(Image.open(root / "masks" / "2.png"))
    (root / "masks" / "2.png").unlink()
    Image.fromarray(mask).save(root / "masks" / "2.jpg", quality=90)
    (root / "classes.json").unlink()  # the classes are counted from the masks, JPEG noise and all
    return root, "2.jpg"


def binary_masks_in_0_and_255(root):
    for i in range(3):
        write_pair(root / "images" / f"{i}.png", root / "masks" / f"{i}.png", i)
        mask = np.asarray(Image.open(root / "masks" / f"{i}.png"))
        Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    return root, "must mark objects with 1"


MASKS = {
    "mask saved as JPEG": mask_saved_as_jpeg,
    "binary masks drawn as 0/255": binary_masks_in_0_and_255,
    "mask smaller than its image": mask_wrong_size,
    "colour (RGB) mask": mask_in_colour,
    "mask ids beyond the classes": mask_ids_outside_classes,
    "image without a mask": image_without_mask,
}


@pytest.mark.parametrize("build", MASKS.values(), ids=MASKS.keys())
def test_bad_masks_are_listed_by_file(build, tmp_path, pixelforge_cli):
    target, name = build(tmp_path / "masks")
    result = pixelforge_cli("data", "check", target, "--task", "segment", "--strict")
    assert result.code == 1 and name in result.out.replace("\n", ""), result.out + result.err


@pytest.mark.parametrize("build", [mask_wrong_size, mask_ids_outside_classes], ids=["mask size", "mask ids"])
def test_a_mask_mistake_found_while_decoding_leaves_no_run_folder(build, tmp_path, pixelforge_cli):
    """Masks are read when the dataset decodes them, after the run folder exists; the folder is removed again."""
    target, name = build(tmp_path / "masks")
    out = tmp_path / "run"
    result = pixelforge_cli("train", "--task", "segment", "--data", target, "--out", out, "--epochs", "1",
                            "--img-size", "32", "--batch-size", "2", "--weights", "none", "--quiet")
    assert result.code == 2 and name.split(":")[0] in result.error_line  # the file, or the ids, named
    assert not out.exists()


def test_mask_predictions_of_two_images_with_one_name_are_both_kept(tmp_path):
    """Class folders that each hold a 1.png: the second mask and overlay were written over the first."""
    from pixelforge.deploy.runtime.mask_files import predict_files

    for i, folder in enumerate(("ants", "bees")):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        Image.new("RGB", (12, 10), (90 * i, 0, 0)).save(tmp_path / "photos" / folder / "1.png")
    results = predict_files([tmp_path / "photos"], tmp_path / "out", ["bg", "fg"],
                            lambda image: (image[..., 0] > 0).astype(np.int64))
    assert [Path(r["mask"]).name for r in results] == ["1.png", "1-2.png"]
    assert [Path(r["overlay"]).name for r in results] == ["1.png", "1-2.png"]
    assert [r["class_fractions"]["fg"] for r in results] == [0.0, 1.0]  # each its own image's mask
