"""An instance-segmentation run exports to an ONNX package whose boxes and masks match PyTorch's, and the package
predicts and serves COCO RLE masks without torch."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixelforge.errors import PixelforgeError
from tests.output_checks import check_run_and_package
from tests.tasks.test_instance import write_tiny_instance

pytestmark = pytest.mark.xdist_group("export_instance")  # the module's trained run is built once, on one worker


def _decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    return mask_utils.decode({**rle, "counts": rle["counts"].encode()})


@pytest.fixture(scope="module")
def instance_run(tmp_path_factory):
    import pixelforge

    data = write_tiny_instance(tmp_path_factory.mktemp("inst") / "data", count=10)
    result = pixelforge.train(str(data), task="instance", weights="none", img_size=64, epochs=1, batch_size=4,
                              strategy="full", lr=1e-3, out=str(tmp_path_factory.mktemp("runs") / "i"), quiet=True)
    return result.run_dir, data


@pytest.fixture(scope="module")
def instance_package(instance_run, tmp_path_factory):
    from pixelforge.tasks.instance.export import export_package

    return export_package(instance_run[0], tmp_path_factory.mktemp("packages") / "inst")


def test_export_writes_a_package_whose_boxes_and_masks_match_pytorch(instance_package, instance_run):
    from pixelforge.tasks.instance.export import export_package

    package = instance_package
    assert {p.name for p in package.iterdir()} >= {"model.onnx", "preprocess.json", "classes.json", "package.json",
                                                    "parity.json"}
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["task"] == "instance" and manifest["output_names"][-1] == "masks"
    assert manifest["category_ids"] == [1, 2] and json.loads((package / "classes.json").read_text()) == ["square", "disc"]
    parity = json.loads((package / "parity.json").read_text())
    assert parity["passed"] and parity["images"] >= 1 and parity["matched"] == parity["torch_detections"] > 0
    assert parity["mask_agreement"] >= 0.999
    with pytest.raises(PixelforgeError, match="not empty"):
        export_package(instance_run[0], package)


def test_export_is_refused_when_detections_differ(tmp_path, instance_run, monkeypatch):
    from pixelforge.tasks.common import boxes_export
    from pixelforge.tasks.instance import export as export_instance

    monkeypatch.setattr(boxes_export, "match_detections",
                        lambda e, g, floor, *limits: boxes_export.BoxMatch(0, 1, 0.0, 0.0))
    with pytest.raises(PixelforgeError, match="export refused"):
        export_instance.export_package(instance_run[0], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.iterdir())


def test_export_is_refused_when_masks_differ(tmp_path, instance_run, monkeypatch):
    from pixelforge.tasks.instance import export as export_instance

    # Boxes twin as usual, but each torch mask is compared with another detection's mask (reversed order).
    monkeypatch.setattr(export_instance, "twin_pairs",
                        lambda e, g, tol=None: [(k, len(g[0]) - 1 - k) for k in range(len(g[0]))])
    with pytest.raises(PixelforgeError, match=r"export refused: 0 of \d+ detections differ or masks agree on") as err:
        export_instance.export_package(instance_run[0], tmp_path / "bad")
    assert float(str(err.value).split("masks agree on ")[1].split(" %")[0]) < 99.9
    assert not list(tmp_path.iterdir())


def test_package_predicts_rle_masks_without_torch(tmp_path, instance_package, instance_run):
    image = instance_run[1] / "images" / "002.png"
    Image.open(image).resize((150, 70)).save(tmp_path / "wide.png")
    paths = [str(tmp_path / "wide.png"), str(image)]
    code = ("import sys; sys.modules['torch'] = None\n"  # any torch import now fails
            "from pixelforge.deploy.runtime import predict_package\n"
            f"found = predict_package({str(instance_package)!r}, {paths!r}, {str(tmp_path / 'out')!r}, score_threshold=0.0)\n"
            "import json; print(json.dumps([[f['summary'], len(f['detections'])] for f in found]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (summary, count), _ = json.loads(done.stdout.strip().splitlines()[-1])
    assert count > 0 and summary.startswith(f"{count} object")
    results = json.loads((tmp_path / "out" / "predictions.json").read_text())
    sizes = {1: (70, 150), 2: (64, 96)}
    assert {r["image_id"] for r in results} == {1, 2}
    for r in results:
        assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(r) and r["category_id"] in (1, 2)
        assert _decode(r["segmentation"]).shape == sizes[r["image_id"]]
    assert Image.open(tmp_path / "out" / "wide.png").size == (150, 70)
    images = json.loads((tmp_path / "out" / "images.json").read_text())
    assert images[0] == {"id": 1, "file_name": paths[0], "width": 150, "height": 70}


def test_cli_predicts_with_an_instance_package(tmp_path, instance_package, instance_run, cli):
    from typer.testing import CliRunner

    from pixelforge.cli import app

    image = instance_run[1] / "images" / "003.png"
    done = CliRunner().invoke(app, ["predict", str(instance_package), str(image), "--out", str(tmp_path / "o"),
                                    "--json", "--score-threshold", "0"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output.strip().splitlines()[-1])[0]["summary"].endswith(tuple("0123456789"))
    assert (tmp_path / "o" / "predictions.json").is_file() and (tmp_path / "o" / "003.png").is_file()
    check_run_and_package(cli, instance_run[0], instance_package, [image], tmp_path / "keys", "instance", "annotated",
                          "--score-threshold", "0")


def test_server_answers_an_rle_mask_per_detection(instance_package, instance_run):
    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    buffer = io.BytesIO()
    Image.open(instance_run[1] / "images" / "002.png").resize((120, 80)).save(buffer, "PNG")
    with TestClient(create_app(ServerSettings(str(instance_package)))) as client:
        assert client.get("/v1/model").json()["task"] == "instance"
        body = client.post("/v1/predict?score_threshold=0",
                           files={"file": ("a.png", buffer.getvalue(), "image/png")}).json()
    answer = body["predictions"][0]
    assert body["task"] == "instance" and answer["width"] == 120 and answer["height"] == 80
    assert answer["detections"], "an untrained model still reports low-scoring objects at threshold 0"
    for det in answer["detections"]:
        assert {"box", "score", "label", "rle"} <= set(det) and det["label"] in ("square", "disc")
        assert _decode(det["rle"]).shape == (80, 120)


def test_video_runs_an_instance_package_drawing_its_boxes(tmp_path, instance_package):
    cv2 = pytest.importorskip("cv2")
    from pixelforge.deploy.video import run_video

    writer = cv2.VideoWriter(str(tmp_path / "in.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    for _ in range(3):
        frame = np.full((64, 96, 3), 90, np.uint8)
        frame[20:44, 30:54] = 220
        writer.write(frame)
    writer.release()
    result = run_video(instance_package, str(tmp_path / "in.mp4"), tmp_path / "out.mp4", score_threshold=0.0)
    assert result.frames == 3 and result.task == "instance" and (tmp_path / "out.mp4").stat().st_size > 0
    assert all(label.split()[0].isdigit() or label == "nothing found" for label in result.labels)


def test_video_overlay_blends_each_instance_mask_in_its_box_colour():
    from pixelforge.deploy.runtime.draw import draw_prediction

    frame = np.full((64, 96, 3), 90, np.uint8)
    mask = np.zeros((64, 96), bool)
    mask[40:60, 10:30] = True
    detection = {"box": [10, 40, 30, 60], "score": 0.9, "label": "disc"}
    out = draw_prediction(frame.copy(), ["box", "disc"], {"detections": [detection],
                                                      "instance_masks": [{**detection, "mask": mask}]}, "x", 10.0)
    inside, outside = out[50, 20], out[50, 60]  # below the text band, inside the box's outline
    assert (outside == 90).all() and not (inside == 90).all()


def test_fp16_masks_agree_with_pytorch_and_the_package_segments_on_cpu(tmp_path, instance_run, cli, monkeypatch):
    """The mixed fp16 Mask R-CNN (box decoding, NMS and mask pasting float32) loads in ONNX Runtime's CPU provider and
    its masks binarise as PyTorch's; the tiny run's near-tied faint detections are borderline (see detection's
    test), its mask agreement is judged."""
    import pixelforge
    from pixelforge.tasks.instance import export as instance_export

    run, data = instance_run
    package = pixelforge.export(run, tmp_path / "pkg", fp16=True)
    report = json.loads((package / "parity.json").read_text())["fp16"]
    assert report["passed"] and report["mask_agreement"] >= 0.99 and report["map_drop"] <= 0.005
    assert report["required_mask_agreement"] == 0.99
    image = data / "images" / "003.png"
    done = cli("predict", package, image, "--precision", "fp16", "--score-threshold", "0", "--json",
               "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["summary"].endswith(tuple("0123456789"))
    monkeypatch.setattr(instance_export, "FP16_MASK_AGREEMENT", 1.01)  # unreachable: the fp16 check must refuse
    with pytest.raises(PixelforgeError, match=r"export refused: fp16 parity failed .*; masks agree on [\d.]+ % of "
                                              r"pixels, need 101 %"):
        pixelforge.export(run, tmp_path / "refused", fp16=True)
    assert not (tmp_path / "refused").exists()
