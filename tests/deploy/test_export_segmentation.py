"""Segmentation export: the ONNX package predicts the same masks as PyTorch, and runs without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pixelforge.errors import PixelforgeError
from tests.output_checks import check_common_keys, check_same_keys
from tests.tasks.test_segmentation import CLASSES, write_tiny_masks


@pytest.fixture(scope="module")
def untrained_run(tmp_path_factory) -> Path:
    """A segmentation run folder holding an untrained U-Net (no training needed to test the conversion)."""
    from pixelforge.config import save_config
    from pixelforge.tasks.config import build_config
    from pixelforge.runs import folder as rd
    from pixelforge.models.segmenters import build_segmenter

    root = tmp_path_factory.mktemp("segexport")
    data = write_tiny_masks(root / "data", count=8)
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(build_config(data=str(data), task="segment", arch="unet", weights="none", img_size=32), run / "config.yaml")
    rd.write_json(run / "classes.json", CLASSES)
    torch.manual_seed(0)
    model = build_segmenter("unet", num_classes=3, weights="none")
    rd.save_checkpoint({"model": model.state_dict(), "task": "segment", "arch": "unet", "in_channels": 3,
                        "mean": [0.5] * 3, "std": [0.5] * 3, "ignore_index": 255, "classes": CLASSES},
                       run / "checkpoints" / "best.ckpt")
    return run


def test_export_writes_a_checked_segmentation_package(untrained_run, tmp_path):
    from pixelforge.tasks.segment.export import export_package

    out = tmp_path / "pkg"
    assert export_package(untrained_run, out, parity_images=4) == out
    report = json.loads((out / "parity.json").read_text())
    assert report["passed"] and report["pixel_agreement"] >= 0.999 and report["pixels"] > 0
    assert json.loads((out / "package.json").read_text())["task"] == "segment"
    assert json.loads((out / "classes.json").read_text()) == CLASSES
    pre = json.loads((out / "preprocess.json").read_text())
    assert pre["size"] == [32, 32] and pre["mean"] == [0.5] * 3 and pre["channels"] == 3 and pre["bit_depth"] == 8
    with pytest.raises(PixelforgeError, match="not empty"):
        export_package(untrained_run, out)


def test_export_is_refused_when_parity_fails(untrained_run, tmp_path, monkeypatch):
    from pixelforge.tasks.segment import export as export_segmentation

    monkeypatch.setattr(export_segmentation, "MIN_AGREEMENT", 1.5)  # unreachable: every export must now fail
    with pytest.raises(PixelforgeError, match="export refused"):
        export_segmentation.export_package(untrained_run, tmp_path / "pkg", parity_images=2)
    assert not (tmp_path / "pkg").exists() and not list(tmp_path.glob(".pkg*"))


def test_package_predicts_pytorch_masks_without_importing_torch(untrained_run, tmp_path):
    from pixelforge.data.masks.images import load_image_any
    from pixelforge.tasks.segment.evaluate import load_segmentation_run, predict_full_resolution
    from pixelforge.tasks.segment.export import export_package

    out = tmp_path / "pkg"
    export_package(untrained_run, out, parity_images=2)
    image = sorted((untrained_run.parent / "data" / "images").glob("*.png"))[0]
    code = ("import sys, json; from pixelforge.deploy.runtime import load_runtime; "
            "from pixelforge.data.masks.images import load_image_any; "
            f"m = load_runtime({str(out)!r}).predict_images([load_image_any({str(image)!r})])[0]['mask']; "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'shape': m.shape, 'mask': m.tolist()}))")
    result = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert result["torch"] is False and result["shape"] == [48, 48]
    expected = predict_full_resolution(load_segmentation_run(untrained_run), load_image_any(image))
    agreement = (torch.tensor(result["mask"]) == torch.from_numpy(expected)).float().mean()
    assert agreement > 0.95  # same model; only the package's stretch-resize differs from the shorter-side resize


def test_predict_from_a_package_writes_the_same_files_as_from_a_run(untrained_run, tmp_path, monkeypatch):
    from pixelforge.deploy.runtime import predict_package
    from pixelforge.tasks.segment.export import export_package

    package = export_package(untrained_run, tmp_path / "pkg", parity_images=2)
    images = untrained_run.parent / "data" / "images"
    results = predict_package(package, [str(images)], tmp_path / "out")
    assert len(results) == 8 and set(results[0]) >= {"path", "mask", "overlay", "class_fractions", "summary"}
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    packaged = sorted(p.relative_to(package) for p in package.rglob("*"))
    first = predict_package(package, [str(images)])  # default ./predictions, then predictions-2: kept
    second = predict_package(package, [str(images)])
    assert Path(first[0]["mask"]).parent == Path("predictions")
    assert Path(second[0]["mask"]).parent == Path("predictions-2")
    assert sorted(p.relative_to(package) for p in package.rglob("*")) == packaged  # the package is never written into
    assert Path(results[0]["mask"]).name == "000.png" and Path(results[0]["overlay"]).is_file()


def test_a_package_predicts_the_run_s_masks_pixel_for_pixel_on_square_8_bit_images(untrained_run, tmp_path):
    """The runtime resizes an 8-bit image as 8-bit, as the run's `model_input` does (torchvision's antialiased uint8
    resize is PIL's): it resized floats, up to about a grey level away, and near-tied pixels of `predict RUN` and
    `predict PACKAGE` came out as different classes (0.1% of the pixels of a one-epoch shapes run)."""
    import numpy as np
    from PIL import Image

    from pixelforge.deploy.runtime import predict_package
    from pixelforge.deploy.runtime.segment import preprocess_image
    from pixelforge.tasks.segment.evaluate import load_segmentation_run, model_input
    from pixelforge.tasks.segment.export import export_package

    package = export_package(untrained_run, tmp_path / "pkg", parity_images=2)
    pre = json.loads((package / "preprocess.json").read_text())
    run = load_segmentation_run(untrained_run)
    images = sorted((untrained_run.parent / "data" / "images").glob("*.png"))
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        assert np.abs(preprocess_image(image, pre) - model_input(run, image).numpy()).max() < 1e-6
    from_run = pixelforge_predict(untrained_run, images, tmp_path / "run-out")
    from_package = predict_package(package, [str(p) for p in images], tmp_path / "package-out")
    for a, b in zip(from_run, from_package):
        assert np.array_equal(np.asarray(Image.open(a["mask"])), np.asarray(Image.open(b["mask"])))
    check_common_keys(from_run, "segment", "mask")
    check_common_keys(from_package, "segment", "mask")
    check_same_keys(from_run, from_package)


def pixelforge_predict(run, images, out):
    import pixelforge

    return pixelforge.predict(run, [str(p) for p in images], out=out)


def tied_logits():
    """[1, 5, 16, 16] logits on a coarse grid (many ties), class 3 a copy of class 1: wherever 1 is the maximum,
    3 ties with it."""
    import numpy as np

    logits = np.round(np.random.default_rng(0).normal(size=(1, 5, 16, 16)) * 2) / 2
    logits[0, 3] = logits[0, 1]
    return logits.astype(np.float32)


def test_a_large_photo_s_logits_are_resized_one_class_at_a_time_into_the_same_mask(untrained_run, monkeypatch):
    """Above PER_CLASS_PIXELS (16 MP; lowered here) neither the run nor the package resizes all K logit planes at
    once (7.6 GB at 108 MP): a running maximum over classes gives the one-pass argmax's mask exactly, a tie going
    to the earlier class as argmax's first maximum does."""
    import numpy as np
    from torch.nn import functional as F

    import pixelforge.deploy.runtime.segment as runtime_segment
    from pixelforge.tasks.segment import evaluate

    logits, size = tied_logits(), (75, 101)
    run_whole = evaluate.upsampled_argmax(torch.from_numpy(logits), size)
    package_whole = runtime_segment.logits_to_mask(logits, *size)
    image = np.random.default_rng(1).integers(0, 256, (75, 101, 3), dtype=np.uint8)
    run = evaluate.load_segmentation_run(untrained_run)
    predicted = evaluate.predict_full_resolution(run, image)

    channels, interpolate = [], F.interpolate
    monkeypatch.setattr(evaluate.F, "interpolate", lambda x, **kw: channels.append(x.shape[1]) or interpolate(x, **kw))
    monkeypatch.setattr(runtime_segment, "PER_CLASS_PIXELS", 0)
    assert np.array_equal(evaluate.upsampled_argmax(torch.from_numpy(logits), size), run_whole)
    assert np.array_equal(runtime_segment.logits_to_mask(logits, *size), package_whole)
    assert set(channels) == {1} and len(channels) == 5  # one class's plane at a time
    assert not (run_whole == 3).any() and (run_whole == 1).any()  # class 3 only ever ties with class 1: 1 wins
    assert np.array_equal(evaluate.predict_full_resolution(run, image), predicted)
    # the smallest type that holds the 5 classes, whichever path: int64 took 864 MB at 108 MP
    assert {a.dtype for a in (run_whole, package_whole, predicted, runtime_segment.logits_to_mask(logits, *size),
                              evaluate.upsampled_argmax(torch.from_numpy(logits), size))} == {np.dtype(np.uint8)}
    assert runtime_segment.mask_dtype(256) == np.uint8 and runtime_segment.mask_dtype(257) == np.uint16


def test_the_overlay_is_drawn_in_bands_of_rows_into_the_same_picture(monkeypatch):
    """The overlay's float arithmetic took ~80 bytes a pixel (9 GB of `predict`'s 9.2 GB on a 108 MP photo): it is
    drawn OVERLAY_ROWS rows at a time, pixel for pixel the one-pass picture."""
    import tracemalloc

    import numpy as np

    from pixelforge.deploy.runtime import mask_files

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1024, 512, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, (1024, 512)).astype(np.int64)
    mask[:3] = 255  # ignored pixels: white
    tracemalloc.start()
    banded = mask_files.overlay(image, mask, 3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16e6  # the one-pass arithmetic of these 0.5 MP took 31 MB
    monkeypatch.setattr(mask_files, "OVERLAY_ROWS", 10 ** 6)
    assert np.array_equal(banded, mask_files.overlay(image, mask, 3))
    monkeypatch.setattr(mask_files, "OVERLAY_ROWS", 7)
    assert np.array_equal(banded, mask_files.overlay(image, mask, 3))


def test_fp16_and_int8_models_are_checked_in_mask_terms_and_predict_under_precision(untrained_run, tmp_path):
    from pixelforge.deploy.runtime import load_runtime
    from pixelforge.data.masks.images import load_image_any
    from pixelforge.tasks.segment.export import export_package

    out = export_package(untrained_run, tmp_path / "pkg", parity_images=4, fp16=True, int8=True,
                         max_int8_drop=100.0, calibration_images=4)
    manifest = json.loads((out / "package.json").read_text())
    assert manifest["models"] == {"fp32": "model.onnx", "int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
    assert manifest["default_precision"] == "int8" and manifest["export"]["calibration_images"] == 4
    report = json.loads((out / "parity.json").read_text())
    assert report["fp16"]["passed"] and report["fp16"]["pixel_agreement"] >= 0.99
    assert report["fp16"]["max_abs_logit_diff"] > 0  # really the fp16 graph, not the fp32 one again
    assert report["int8"]["miou_drop_points"] is not None and report["int8"]["miou"] is not None
    image = load_image_any(sorted((untrained_run.parent / "data" / "images").glob("*.png"))[0])
    masks = {p: load_runtime(out, p).predict_images([image])[0]["mask"] for p in ("fp32", "fp16", "int8")}
    assert load_runtime(out).precision == "int8" and load_runtime(out, "fp16").precision == "fp16"
    assert (masks["fp16"] == masks["fp32"]).mean() >= 0.99


@pytest.mark.parametrize("option,constant,words", [
    ({"fp16": True}, ("FP16_MIN_AGREEMENT", 1.5), "fp16 parity failed"),
    ({"int8": True, "max_int8_drop": 0.0}, None, "int8 parity failed")])
def test_a_failing_fp16_or_int8_check_refuses_the_export_and_writes_nothing(untrained_run, tmp_path, monkeypatch,
                                                                           option, constant, words):
    from pixelforge.tasks.segment import export as export_segmentation

    if constant:
        monkeypatch.setattr(export_segmentation, *constant)
    else:  # the int8 model's mIoU is made worse than PyTorch's by one point more than allowed
        real = export_segmentation._parity

        def worse(*args, **kwargs):
            report = real(*args, **kwargs)
            return {**report, "miou": report["reference_miou"] - 0.01} if args[-1:] == ("model.int8.onnx",) else report
        monkeypatch.setattr(export_segmentation, "_parity", worse)
    with pytest.raises(PixelforgeError, match=words):
        export_segmentation.export_package(untrained_run, tmp_path / "pkg", parity_images=2, calibration_images=2,
                                           **option)
    assert not (tmp_path / "pkg").exists() and not list(tmp_path.glob(".pkg*"))


def test_predict_package_without_out_writes_in_the_current_folder_not_into_the_package(cli, tmp_path):
    """`predict PACKAGE IMAGES` wrote PACKAGE/predictions, so a package installed read-only could not predict (and
    a shipped package carried its user's predictions); it now writes ./predictions, then predictions-2."""
    from PIL import Image

    from tests.deploy.conftest import write_segmentation_package

    package = write_segmentation_package(tmp_path / "pkg")
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(package.iterdir())
    first = cli("predict", package, tmp_path / "red.png", cwd=work)
    second = cli("predict", package, tmp_path / "red.png", cwd=work)
    assert first.returncode == 0, first.stderr
    assert "outputs: predictions\n" in first.stdout and "outputs: predictions-2\n" in second.stdout
    assert (work / "predictions" / "red.png").is_file() and (work / "predictions-2" / "red.png").is_file()
    assert sorted(package.iterdir()) == before


def test_a_mask_package_warns_once_for_a_multi_page_tiff(tmp_path):
    """The mask tasks' reader (16-bit aware) goes through the same check: a TIFF stack is named, frame 1 used."""
    import pytest
    from PIL import Image

    from pixelforge.data.images import MultiFrameWarning
    from pixelforge.deploy.runtime import predict_package
    from tests.deploy.conftest import write_segmentation_package

    package = write_segmentation_package(tmp_path / "pkg")
    red, green = Image.new("RGB", (40, 30), (200, 10, 10)), Image.new("RGB", (40, 30), (10, 200, 10))
    red.save(tmp_path / "stack.tif", save_all=True, append_images=[green, green])
    with pytest.warns(MultiFrameWarning, match=r"stack\.tif: a multi-page TIFF with 3 frames; frame 1 is used") as w:
        results = predict_package(package, [str(tmp_path / "stack.tif")], tmp_path / "out")
    assert len(w) == 1 and results[0]["class_fractions"]["blob"] > 0.99  # the red first page
