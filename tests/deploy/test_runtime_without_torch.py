"""The runtime predicts a package of every task in a process where torch cannot be imported, with the same results
and the same files as in a process that has torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.deploy.conftest import write_detection_package, write_instance_package, write_segmentation_package

# A meta-path finder first in line refuses torch and torchvision, so any import of them, however indirect, fails.
NO_TORCH = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked: the runtime must not need it")
        return None

sys.meta_path.insert(0, NoTorch())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the torch block does not work")
"""

PREDICT = NO_TORCH + """
import json
from pixelforge.deploy.runtime import predict_package

package, image, out, options = sys.argv[1:]
print(json.dumps(predict_package(package, [image], out, **json.loads(options))))
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] in ("torch", "torchvision"))))
"""


def _photo(path: Path) -> Path:
    """A grey 96 x 64 picture with a red square: the segmentation package's "blob"."""
    pixels = np.full((64, 96, 3), 128, np.uint8)
    pixels[16:48, 24:56] = (230, 20, 20)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(params=["classify", "detect", "instance", "segment"])
def case(request, tmp_path, sample_images):
    """(package, image, predict options) of one task; the box and mask packages are hand-made ONNX graphs."""
    if request.param == "classify":
        return request.getfixturevalue("tiny_package"), sample_images[2], {"top_k": 2}
    image = _photo(tmp_path / "photo.png")
    if request.param == "segment":
        return write_segmentation_package(tmp_path / "seg"), image, {}
    write = write_detection_package if request.param == "detect" else write_instance_package
    return write(tmp_path / request.param), image, {"score_threshold": 0.1}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_task_predicts_without_torch_as_with_it(case, tmp_path):
    from pixelforge.deploy.runtime import predict_package

    package, image, options = case
    expected = json.loads(json.dumps(predict_package(package, [image], tmp_path / "with", **options)))
    done = subprocess.run([sys.executable, "-c", PREDICT, str(package), str(image), str(tmp_path / "without"),
                           json.dumps(options)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results, imported = done.stdout.strip().splitlines()[-2:]
    assert json.loads(imported) == []
    assert json.loads(results.replace(str(tmp_path / "without"), str(tmp_path / "with"))) == expected
    assert expected[0].get("label") or expected[0].get("detections") or expected[0].get("class_fractions")
    if (tmp_path / "with").exists():  # box and mask tasks write pictures and results: the same bytes
        assert _files(tmp_path / "without") == _files(tmp_path / "with")


CLI_LINES = NO_TORCH + """
import json
from pathlib import Path
from pixelforge.deploy.commands import predict_any_package

package, image, out, options = sys.argv[1:]
results, describe = predict_any_package(Path(package), [image], Path(out), json.loads(options))
print(json.dumps([describe(r) for r in results]))
"""


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_the_cli_lines_of_a_package_need_no_torch(task, tmp_path):
    package = (write_detection_package if task == "detect" else write_segmentation_package)(tmp_path / task)
    image = _photo(tmp_path / "photo.png")
    options = {"score_threshold": 0.1} if task == "detect" else {}
    done = subprocess.run([sys.executable, "-c", CLI_LINES, str(package), str(image), str(tmp_path / "out"),
                           json.dumps(options)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = json.loads(done.stdout.strip().splitlines()[-1])
    if task == "detect":
        assert line == "2 objects: circle 0.80, square 0.20"
    else:  # the classes' shares of the picture: the red square is the "blob"
        assert line.startswith("background ") and ", blob " in line and line.endswith("%")
