"""Packages outlive the pixelforge that exported them: package.json records the writer, the package format, the
opset and the onnxruntime of the export; a package of a newer format, or a model of an opset newer than the installed
onnxruntime reads, is one line naming both and the fix, for every task's runtime."""

from __future__ import annotations

import json
import shutil

import pytest

from pixelforge.errors import PixelforgeError
from pixelforge.formats import PACKAGE_FORMAT
from tests.deploy.conftest import write_detection_package, write_segmentation_package


@pytest.fixture
def package(tiny_package, tmp_path):
    """A copy of the session's exported classification package, to edit."""
    return shutil.copytree(tiny_package, tmp_path / "package")


def _edit_manifest(folder, **changes):
    path = folder / "package.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_package_records_its_writer_format_opset_and_onnxruntime(tiny_package):
    import onnxruntime

    import pixelforge

    manifest = json.loads((tiny_package / "package.json").read_text())
    assert manifest["package_format"] == PACKAGE_FORMAT and manifest["pixelforge_version"] == pixelforge.__version__
    assert manifest["export"]["opset"] == 18 and manifest["export"]["onnxruntime"] == onnxruntime.__version__


def test_a_package_of_a_newer_format_is_one_line_in_predict(cli, package, sample_images):
    _edit_manifest(package, package_format=PACKAGE_FORMAT + 1, pixelforge_version="9.0.0", task="pose")
    result = cli("predict", package, sample_images[0])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"error: {package} was written by pixelforge 9.0.0 (package format "
                                     f"{PACKAGE_FORMAT + 1}); this pixelforge (0.1.0) reads package formats up to "
                                     f"{PACKAGE_FORMAT}: upgrade with pip install -U pixelforge")


@pytest.mark.parametrize("write", [write_detection_package, write_segmentation_package])
def test_every_tasks_runtime_refuses_a_newer_package_format(write, tmp_path):
    from pixelforge.deploy.runtime import load_runtime

    folder = write(tmp_path / "pkg")
    _edit_manifest(folder, package_format=PACKAGE_FORMAT + 1)  # no version recorded: still one line
    with pytest.raises(PixelforgeError, match=r"written by pixelforge a newer version \(package format \d+\)"):
        load_runtime(folder)


def test_a_model_of_an_opset_newer_than_onnxruntime_names_both_and_the_fix(package):
    import onnx
    import onnxruntime

    from pixelforge.deploy.runtime import load_runtime

    model = onnx.load(str(package / "model.onnx"))
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 99
    onnx.save(model, str(package / "model.onnx"))
    with pytest.raises(PixelforgeError) as caught:
        load_runtime(package, precision="fp32")
    message = str(caught.value)
    assert message.startswith(f"{package / 'model.onnx'}: exported with ONNX opset 99; the installed onnxruntime "
                              f"{onnxruntime.__version__} supports opsets up to ")
    assert message.endswith("upgrade with pip install -U onnxruntime, or export the package again with this pixelforge")
    assert "\n" not in message
