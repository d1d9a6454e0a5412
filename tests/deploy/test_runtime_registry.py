"""The runtime registry picks a package's runtime by its task; unknown tasks and options a task cannot honour are
one-line errors (no training needed: hand-made packages, and exporters that refuse before loading the run)."""

from __future__ import annotations

import importlib
import json

import pytest
from PIL import Image

from pixelforge.errors import PixelforgeError
from tests.deploy.conftest import write_detection_package, write_instance_package, write_segmentation_package


def test_each_package_gets_its_tasks_runtime(tmp_path):
    from pixelforge.deploy.runtime import RUNTIMES, load_runtime

    packages = {"detect": write_detection_package(tmp_path / "det"), "instance": write_instance_package(tmp_path / "inst"),
                "segment": write_segmentation_package(tmp_path / "seg")}
    for task, package in packages.items():
        runtime = load_runtime(package)
        assert type(runtime) is RUNTIMES[task] and runtime.task == task
    assert {"classify", "detect", "instance", "segment"} <= set(RUNTIMES)  # other tasks add theirs (style)


def test_an_unknown_task_names_the_package_and_the_known_tasks(tmp_path):
    from pixelforge.deploy.runtime import load_runtime

    package = write_detection_package(tmp_path / "pose")
    manifest = json.loads((package / "package.json").read_text())
    (package / "package.json").write_text(json.dumps({**manifest, "task": "pose"}))
    with pytest.raises(PixelforgeError, match=r"pose.*task 'pose'.*known tasks: .*classify, .*detect, .*instance, .*segment"):
        load_runtime(package)


def test_classifications_runtime_names_a_package_of_another_task_and_load_runtime(tmp_path):
    from pixelforge.deploy.runtime import Runtime

    package = write_detection_package(tmp_path / "det")
    # was "det/preprocess.json: no 'resize_short_side'; export the package again": exporting again changes nothing
    with pytest.raises(PixelforgeError, match=r"det: a package of task 'detect', which `Runtime` \(classification\) "
                                              r"cannot read; load it with `load_runtime\("):
        Runtime(package)


def test_predict_options_of_another_task_are_refused(tmp_path):
    from pixelforge.deploy.runtime import predict_package

    package = write_segmentation_package(tmp_path / "seg")
    image = tmp_path / "a.png"
    Image.new("RGB", (20, 10), (200, 30, 30)).save(image)
    with pytest.raises(PixelforgeError, match="--score-threshold not available for a 'segment' package"):
        predict_package(package, [image], tmp_path / "out", score_threshold=0.5)


REFUSED_EXPORT_OPTIONS = [  # (task, option, flag, what the line says the task offers instead)
    *[(task, option, flag, "it offers fp32 ONNX and --fp16 \\(int8 of a detector is not converted or checked")
      for task in ("detect", "instance")
      for option, flag in [({"int8": True}, "--int8"), ({"format": "torchscript"}, "--format torchscript"),
                           ({"tolerance": 0.0}, "--tolerance")]],
    ("compress", {"fp16": True}, "--fp16", "its packages are fp32 ONNX only, by design: the entropy coder needs"),
    ("caption", {"tolerance": 0.0}, "--tolerance", "it offers fp32 ONNX and --fp16, --int8, --calibration"),
    ("clip", {"max_int8_drop": 1.0}, "--max-int8-drop", "it offers fp32 ONNX and --fp16, --int8, --calibration"),
    ("style", {"tolerance": 0.0}, "--tolerance", "it offers fp32 ONNX and --fp16, --int8, --calibration"),
    ("gan", {"max_int8_drop": 1.0}, "--max-int8-drop", "it offers fp32 ONNX and --fp16, --int8, --calibration"),
    ("denoise", {"tolerance": 0.0}, "--tolerance", "it offers fp32 ONNX and --fp16, --int8, --max-int8-drop"),
    *[("segment", option, flag, "it offers fp32 ONNX and --fp16, --int8, --max-int8-drop")
      for option, flag in [({"format": "torchscript"}, "--format torchscript"), ({"tolerance": 0.0}, "--tolerance")]],
]


@pytest.mark.parametrize("task,option,flag,offers", REFUSED_EXPORT_OPTIONS)
def test_exporters_refuse_what_their_packages_cannot_honour_and_name_what_they_offer(task, option, flag, offers, tmp_path):
    export_package = importlib.import_module(f"pixelforge.tasks.{task}.export").export_package
    with pytest.raises(PixelforgeError, match=f"export: {flag} not available for task '{task}' \\({offers}"):
        export_package(tmp_path / "no-run-needed", tmp_path / "pkg", **option)
    assert not (tmp_path / "pkg").exists()
