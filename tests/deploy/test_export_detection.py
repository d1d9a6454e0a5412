"""A detection run exports to an ONNX package whose boxes match PyTorch's, and the package predicts without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pixelforge.errors import PixelforgeError
from tests.tasks.test_detection import write_tiny_coco

pytestmark = pytest.mark.xdist_group("export_detection")  # the module's trained run is built once, on one worker


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    import pixelforge

    root = write_tiny_coco(tmp_path_factory.mktemp("coco"), {"train": 6, "val": 3})
    result = pixelforge.train(str(root), task="detect", arch="fasterrcnn", weights="none", img_size=64, epochs=1,
                              batch_size=3, strategy="full", lr=1e-3, out=str(tmp_path_factory.mktemp("runs") / "d"),
                              quiet=True)
    return result.run_dir, root


def test_export_writes_a_package_that_matches_pytorch(tmp_path, detect_run):
    from pixelforge.tasks.detect.export import export_package

    run, _ = detect_run
    package = export_package(run, tmp_path / "pkg")
    assert {p.name for p in package.iterdir()} >= {"model.onnx", "preprocess.json", "classes.json", "package.json",
                                                    "parity.json", "model_card.md"}
    assert (package / "model_card.md").read_text() == (run / "model_card.md").read_text()  # the run's card travels
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["task"] == "detect" and manifest["category_ids"] == [3, 7]
    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["images"] == 3 and parity["matched"] == parity["torch_detections"]
    with pytest.raises(PixelforgeError, match="not empty"):
        export_package(run, package)


def test_export_is_refused_when_boxes_differ(tmp_path, detect_run, monkeypatch):
    from pixelforge.tasks.common import boxes_export
    from pixelforge.tasks.detect.export import export_package

    run, _ = detect_run
    monkeypatch.setattr(boxes_export, "match_detections", lambda e, g, floor: (0, 1, 0.0, 0.0))
    with pytest.raises(PixelforgeError, match="export refused"):
        export_package(run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_matching_tolerates_only_borderline_scores():
    import numpy as np

    from pixelforge.tasks.common.boxes_export import match_detections

    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    a = (boxes, np.array([0.9, 0.0505], np.float32), np.array([1, 2]))
    b = (boxes[:1], np.array([0.9004], np.float32), np.array([1]))
    assert match_detections(a, b, floor=0.05)[:2] == (1, 0)  # the 0.0505 one sits at the threshold
    c = (boxes[:1] + 1, np.array([0.9], np.float32), np.array([1]))  # IoU ~0.68: not the same box
    assert match_detections(a, c, floor=0.05)[1] == 2


def test_package_predicts_without_torch(tmp_path, detect_run):
    from pixelforge.tasks.detect.export import export_package

    run, root = detect_run
    package = export_package(run, tmp_path / "pkg")
    image = sorted((root / "images" / "val").glob("*.png"))[1]
    code = ("import sys; sys.modules['torch'] = None\n"  # any torch import now fails
            "from pixelforge.data.images import load_rgb\n"
            "from pixelforge.deploy.runtime import load_runtime, predict_package\n"
            f"boxes = [load_runtime({str(package)!r}).predict_images([load_rgb({str(image)!r})])[0]['detections']]\n"
            f"found = predict_package({str(package)!r}, [{str(image)!r}], {str(tmp_path / 'out')!r}, score_threshold=0.0)\n"
            "import json; print(json.dumps([len(boxes), len(boxes[0]), found[0]['detections'][:1]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    count, n_boxes, first = json.loads(done.stdout.strip().splitlines()[-1])
    assert count == 1 and isinstance(n_boxes, int)
    if first:
        assert first[0]["label"] in ("box", "disc") and len(first[0]["box"]) == 4
    assert (tmp_path / "out" / f"{image.stem}.png").is_file()
    assert isinstance(json.loads((tmp_path / "out" / "predictions.json").read_text()), list)
