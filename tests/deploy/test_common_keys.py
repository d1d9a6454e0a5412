"""The keys every task's `predict --json` rows and `/v1/predict` answers share (docs/deployment.md, "What every task
returns"): `path`, `task` and, where a file was written, `output`; a run's rows and its package's have the same keys;
every served answer has `task`, `width`, `height`. The packages here are the session's tiny classifier and
hand-made ONNX packages (conftest.py), so no task is trained for these tests; each task's own tests check its trained
runs and exported packages the same way (tests/output_checks.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.deploy.conftest import write_detection_package, write_instance_package, write_segmentation_package
from tests.output_checks import check_common_keys, check_same_keys, check_served_answer

HAND_MADE = {"segment": (write_segmentation_package, "mask"), "detect": (write_detection_package, "annotated"),
             "instance": (write_instance_package, "annotated")}


def _png(path, size=(48, 40)):
    pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    pixels[8:24, 10:30] = (230, 20, 20)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def packages(tiny_package, tmp_path_factory) -> dict:
    """{task: (package folder, the key of its rows naming the file written, or None)}."""
    root = tmp_path_factory.mktemp("common-keys")
    made = {task: (write(root / task), key) for task, (write, key) in HAND_MADE.items()}
    return {"classify": (tiny_package, None), **made}


@pytest.mark.parametrize("task", ["classify", "segment", "detect", "instance"])
def test_predict_json_from_a_package_has_path_task_and_output(task, packages, cli, tmp_path):
    package, output_key = packages[task]
    images = [_png(tmp_path / "a.png"), _png(tmp_path / "b.png", (30, 50))]
    done = cli("predict", package, *images, "--json", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    check_common_keys(json.loads(done.stdout), task, output_key)


def test_a_classify_run_and_its_package_print_the_same_keys(cli, tiny_run, tiny_package, sample_images, tmp_path):
    images = [*sample_images[:2], tmp_path / "broken.png"]
    images[-1].write_bytes(b"not an image")
    rows = {}
    for name, source in (("run", tiny_run), ("package", tiny_package)):
        done = cli("predict", source, *images, "--json", "--top-k", "2")
        assert done.returncode == 1, done.stderr  # the broken file: a row with "error", the others predicted
        rows[name] = json.loads(done.stdout)
        check_common_keys(rows[name], "classify")
    check_same_keys(rows["run"], rows["package"])


@pytest.mark.parametrize("task", ["classify", "segment", "detect", "instance"])
def test_every_served_answer_has_task_width_and_height(task, packages):
    """Classification's answer had none of them (its uploads are centre crops): now the upload's own size."""
    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    buffer = io.BytesIO()
    Image.fromarray(np.full((37, 53, 3), 200, np.uint8)).save(buffer, "PNG")
    with TestClient(create_app(ServerSettings(str(packages[task][0])))) as client:
        response = client.post("/v1/predict", files=[("file", ("a.png", buffer.getvalue(), "image/png"))] * 2)
    assert response.status_code == 200, response.text
    check_served_answer(response.json(), task, 53, 37)


def test_a_classify_answer_gives_the_upright_size_of_a_rotated_jpeg_decoded_at_reduced_size(tiny_package):
    """A JPEG is decoded at reduced size for the crop (draft mode) and turned by its EXIF orientation: the size
    answered is the photo's, upright, not the reduced one."""
    from fastapi.testclient import TestClient

    from pixelforge.deploy.serve.server import ServerSettings, create_app

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 800, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 300 wide, 800 high
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    with TestClient(create_app(ServerSettings(str(tiny_package)))) as client:
        body = client.post("/v1/predict", files={"file": ("photo.jpg", buffer.getvalue(), "image/jpeg")}).json()
    check_served_answer(body, "classify", 300, 800)
