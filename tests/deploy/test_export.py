"""`pixelforge export`: package contents, parity report, refusals, and the TorchScript format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pixelforge.errors import PixelforgeError


def test_package_holds_model_preprocess_classes_card_and_parity(tiny_package, tiny_run):
    names = {p.name for p in tiny_package.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "preprocess.json", "classes.json", "package.json", "parity.json",
            "model_card.md"} <= names
    assert not any(n.startswith(".") for n in names)
    pre = json.loads((tiny_package / "preprocess.json").read_text())
    assert pre["img_size"] == 32 and pre["resize_short_side"] == 32 and pre["channel_order"] == "RGB"
    assert pre["mean"] == [0.5, 0.5, 0.5] and pre["std"] == [0.5, 0.5, 0.5]
    assert json.loads((tiny_package / "classes.json").read_text()) == json.loads((tiny_run / "classes.json").read_text())
    parity = json.loads((tiny_package / "parity.json").read_text())
    assert parity["fp32"]["passed"] and parity["fp32"]["max_abs_logit_diff"] < 1e-4
    assert parity["fp32"]["top1_agreement"] == 1.0 and 0 < parity["images"] <= 256
    assert "accuracy_change_points" in parity["int8"]
    card = (tiny_package / "model_card.md").read_text()
    assert "## Export settings" in card and "## Parity with PyTorch" in card and "Intended use" in card
    assert json.loads((tiny_package / "package.json").read_text())["default_precision"] == "int8"


def test_onnx_model_has_a_dynamic_batch_axis(tiny_package):
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_package / "model.onnx"))
    assert isinstance(session.get_inputs()[0].shape[0], str)
    for batch in (1, 5):
        out = session.run(None, {"image": np.zeros((batch, 3, 32, 32), np.float32)})[0]
        assert out.shape == (batch, 4)


def test_export_refuses_a_non_empty_out(tiny_run, tmp_path):
    from pixelforge.tasks.classify.export import export_package

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "keep.txt").write_text("mine")
    with pytest.raises(PixelforgeError, match="not empty"):
        export_package(tiny_run, tmp_path / "pkg")
    assert (tmp_path / "pkg" / "keep.txt").read_text() == "mine"


def test_failed_parity_refuses_and_leaves_nothing(tiny_run, tmp_path):
    from pixelforge.tasks.classify.export import export_package

    with pytest.raises(PixelforgeError, match="export refused: fp32 parity failed"):
        export_package(tiny_run, tmp_path / "pkg", tolerance=0.0, parity_images=8)
    assert list(tmp_path.iterdir()) == []  # neither the package nor its staging folder


def test_bad_option_combinations_are_errors(tiny_run, tmp_path):
    from pixelforge.tasks.classify.export import export_package

    with pytest.raises(PixelforgeError, match="--format"):
        export_package(tiny_run, tmp_path / "a", format="tflite")
    with pytest.raises(PixelforgeError, match="need --format onnx"):
        export_package(tiny_run, tmp_path / "b", format="torchscript", int8=True)


def test_torchscript_package_predicts_like_onnx(tiny_run, tiny_package, tmp_path, sample_images):
    from pixelforge.deploy.export.torchscript import TORCH_LOADERS
    from pixelforge.deploy.runtime import Runtime
    from pixelforge.errors import PixelforgeError
    from pixelforge.tasks.classify.export import export_package

    result = export_package(tiny_run, tmp_path / "ts", format="torchscript", parity_images=32)
    assert (result.package_dir / "model.pt").is_file() and result.parity["fp32"]["passed"]
    with pytest.raises(PixelforgeError, match="needs PyTorch"):  # the torch-free runtime alone cannot run it
        Runtime(result.package_dir)
    paths = [str(p) for p in sample_images]
    ts_logits, _, _ = Runtime(result.package_dir, loaders=TORCH_LOADERS).logits_for_files(paths)
    onnx_logits, _, _ = Runtime(tiny_package, "fp32").logits_for_files(paths)
    assert np.abs(ts_logits - onnx_logits).max() < 1e-4


def test_generated_card_when_the_run_has_none(tiny_run, tmp_path):
    import shutil

    from pixelforge.tasks.classify.export import export_package

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model_card.md").unlink(missing_ok=True)
    card = (export_package(run, tmp_path / "pkg", parity_images=8).package_dir / "model_card.md").read_text()
    for heading in ("## Model details", "## Training data", "## Metrics", "## Intended use", "## Limitations",
                    "## Export settings", "## Parity with PyTorch"):
        assert heading in card


def test_run_model_card_is_included(tiny_run, tmp_path):
    import shutil

    from pixelforge.tasks.classify.export import export_package

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model_card.md").write_text("# Card\n\nFairness notes from explain: group gap 3 points.\n")
    result = export_package(run, tmp_path / "pkg", parity_images=8)
    card = (result.package_dir / "model_card.md").read_text()
    assert card.startswith("# Card") and "group gap 3 points" in card
    assert "## Export settings" in card and "## Parity with PyTorch" in card


def test_export_cli_writes_the_package(cli, tiny_run, tmp_path):
    result = cli("export", tiny_run, "--format", "onnx", "--out", tmp_path / "pkg", "--parity-images", "16")
    assert result.returncode == 0, result.stderr
    assert "package:" in result.stdout and (tmp_path / "pkg" / "model.onnx").is_file()
    again = cli("export", tiny_run, "--out", tmp_path / "pkg")
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


def test_moved_data_needs_data_option(tiny_run, shapes_dir, tmp_path):
    import shutil

    import yaml

    from pixelforge.tasks.classify.export import export_package

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = str(tmp_path / "moved-away")
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(PixelforgeError, match="pass --data"):
        export_package(run, tmp_path / "pkg", parity_images=8)
    assert export_package(run, tmp_path / "pkg", data=str(shapes_dir), parity_images=8).parity["fp32"]["passed"]


def test_fp16_model_is_added_and_checked(tiny_run, tmp_path, sample_images):
    from pixelforge.tasks.classify.export import export_package
    from pixelforge.deploy.runtime import Runtime

    result = export_package(tiny_run, tmp_path / "pkg", fp16=True, parity_images=16)
    assert (result.package_dir / "model.fp16.onnx").is_file() and result.parity["fp16"]["passed"]
    manifest = json.loads((result.package_dir / "package.json").read_text())
    assert manifest["models"]["fp16"] == "model.fp16.onnx" and manifest["default_precision"] == "fp32"
    rows = Runtime(result.package_dir, "fp16").predict_files([str(sample_images[0])])
    assert rows[0]["label"] in {"circle", "square", "star", "triangle"}


def test_package_names_its_run_without_the_builders_file_system(tiny_package, tiny_run):
    exported = json.loads((tiny_package / "package.json").read_text())["export"]
    assert exported["run"] == tiny_run.name
    assert str(tiny_run.parent) not in (tiny_package / "package.json").read_text()


def test_dense_packages_name_their_run_without_the_builders_file_system(tmp_path):
    from pixelforge.deploy.export.folder import write_dense_package_files

    run = tmp_path / "home" / "someone" / "secret-project" / "runs" / "seg-7"
    run.mkdir(parents=True)
    staging = tmp_path / "pkg"
    staging.mkdir()
    write_dense_package_files(staging, run, {"size": [32, 32]}, ["a", "b"], {"task": "segment"}, opset=17)
    text = (staging / "package.json").read_text()
    assert json.loads(text)["export"]["run"] == "seg-7" and "secret-project" not in text
