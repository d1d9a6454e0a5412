"""The built-in shapes set, `check_masks` on a broken dataset, and the preview grid."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.masks.check import check_masks, print_mask_report
from pixelforge.data.masks.images import load_mask, save_mask
from pixelforge.viz.mask_preview import write_mask_preview
from pixelforge.data.masks.shapes import SEGMENT_CLASSES, write_shapes_segment
from pixelforge.data.masks.source import read_masks

from .conftest import scene, write_pair


@pytest.fixture(scope="module")
def shapes_segment(tmp_path_factory):
    return write_shapes_segment(tmp_path_factory.mktemp("shapes_segment"), seed=0, count=24, size=96)


def test_shapes_layout_classes_and_splits(shapes_segment):
    source = read_masks(shapes_segment)
    assert source.classes == SEGMENT_CLASSES == ["background", "circle", "square", "triangle", "star"]
    assert json.loads((shapes_segment / "classes.json").read_text()) == SEGMENT_CLASSES
    assert [len(source.split(s)) for s in ("train", "val", "test")] == [16, 4, 4]
    assert Image.open(source.samples[0].mask).mode == "P"
    ids = set()
    for sample in source.samples:
        ids |= set(np.unique(load_mask(sample.mask)).tolist())
    assert ids == {0, 1, 2, 3, 4}


def test_shapes_masks_match_the_drawn_pixels(shapes_segment):
    # Shapes are flat colours on a noisy background: if the mask is exact, each class region holds only the few
    # flat colours of its shapes, while the background region holds many noisy ones.
    for sample in read_masks(shapes_segment).samples[:12]:
        image = np.asarray(Image.open(sample.image)).reshape(-1, 3)
        mask = load_mask(sample.mask).reshape(-1)
        for k in range(1, 5):
            if (mask == k).any():
                assert len(np.unique(image[mask == k], axis=0)) <= 4, (sample.image, k)
        if (mask == 0).sum() > 500:
            assert len(np.unique(image[mask == 0], axis=0)) > 100


def test_shapes_are_deterministic_and_fast(tmp_path):
    start = time.perf_counter()
    a = write_shapes_segment(tmp_path / "a", seed=3, count=30)
    assert time.perf_counter() - start < 5
    b = write_shapes_segment(tmp_path / "b", seed=3, count=30)
    for name in ("images/train/0000.png", "masks/val/0021.png"):
        assert np.array_equal(np.asarray(Image.open(a / name)), np.asarray(Image.open(b / name)))
    assert Image.open(a / "images/train/0000.png").size == (128, 128)


def test_check_lists_every_problem_kind_without_crashing(split_layout, capsys):
    train, masks = split_layout / "images" / "train", split_layout / "masks" / "train"
    Image.fromarray(scene(5)[0]).save(train / "no_mask.png")  # image without mask
    save_mask(np.zeros((40, 48)), split_layout / "masks" / "val" / "no_image.png")  # mask without image
    (train / "train0.png").write_bytes(b"\x89PNG broken")  # unreadable image
    colour = np.zeros((40, 48, 3), np.uint8)
    colour[:5, :5] = (128, 0, 0)
    Image.fromarray(colour).save(masks / "train1.png")  # colour mask
    save_mask(np.zeros((20, 20)), masks / "train2.png")  # size mismatch
    save_mask(np.full((40, 48), 9), masks / "train3.png")  # id 9 outside 3 classes
    write_pair(split_layout / "images" / "val" / "blank.png", split_layout / "masks" / "val" / "blank.png", 0,
               mask_fn=lambda m, p: save_mask(np.zeros_like(m), p))  # all background (a warning)
    report = check_masks(split_layout)
    assert report.missing_masks == [f"{train / 'no_mask.png'}: image without mask (looked for "
                                    f"{split_layout / 'masks' / 'train' / 'no_mask'}.png); add the mask or remove the image"]
    assert len(report.missing_images) == 1 and "no_image.png" in report.missing_images[0]
    assert len(report.unreadable) == 1 and "train0.png" in report.unreadable[0]
    assert len(report.not_single_channel) == 1 and "train1.png" in report.not_single_channel[0]
    assert len(report.size_mismatch) == 1 and "mask 20x20 but image 48x40" in report.size_mismatch[0]
    assert len(report.unknown_ids) == 1 and "class id(s) 9 outside 0..2" in report.unknown_ids[0]
    assert [p for p in report.empty_masks if p.endswith("blank.png")]
    assert report.problem_count == 6 and report.error_count == 6  # each stops training or leaves a pair out
    assert report.per_split == {"train": 4, "val": 3}
    assert report.bit_depths == {"8-bit": 6} and report.channels == {"3": 6}
    assert 0 < report.class_pixel_fraction["red"] < report.class_pixel_fraction["background"] < 1
    assert json.dumps(report.to_json())  # serialisable for `--json`
    print_mask_report(report)
    out = capsys.readouterr().out
    assert "masks whose size differs from the image: 1" in out and "6 problem(s)" in out


def test_check_on_a_clean_set_reports_no_problems(shapes_segment):
    report = check_masks(shapes_segment)
    assert report.problem_count == 0 and report.total == 24
    assert report.modes == {"RGB": 24}


def test_preview_writes_a_grid_png(shapes_segment, tmp_path):
    out = write_mask_preview(shapes_segment, tmp_path / "sub" / "preview.png", augment="standard", img_size=64, count=6)
    picture = Image.open(out)
    assert picture.format == "PNG" and picture.width > 6 * 64 and picture.height > 64
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 50  # real content, not a blank canvas
