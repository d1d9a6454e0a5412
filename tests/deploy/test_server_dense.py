"""Serving detection and segmentation packages: answers in the image's own pixels, PNG/RLE masks, limits, the key.

Two kinds of package are used: a real ONNX segmentation package built with `onnx.helper` (conftest.py; a 1x1 convolution
that calls reddish pixels "blob", in the exact layout `tasks.segment.export.export_package` writes), so the whole path
ONNX Runtime -> mask -> PNG is exercised without training; and a fake detector that answers fixed boxes relative to
the image size, so box geometry, thresholds and clipping can be checked exactly.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.deploy.runtime.detect import DetectionRuntime
from pixelforge.deploy.runtime.instance import InstanceRuntime
from tests.deploy.conftest import (CARD, DET_CLASSES, write_detection_package, write_fake_detection_package,
                                   write_segmentation_package)

fastapi_testclient = pytest.importorskip("fastapi.testclient")

class FakeDetector(DetectionRuntime):
    """A detection runtime whose model finds three objects placed relative to each image's size (everything but
    the model call is the real runtime's: answers, overlays)."""

    classes, precision, providers = DET_CLASSES, "fp32", ["fake"]

    def __init__(self, folder: Path):
        from pixelforge.deploy.runtime.package import read_dense_package

        self.package = read_dense_package(folder)
        self.calls = 0

    def predict_images(self, images):
        self.calls += 1
        results = []
        for image in images:
            w, h = image.size if hasattr(image, "size") and not isinstance(image, np.ndarray) else image.shape[1::-1]
            results.append({"detections": [
                {"box": [0.1 * w, 0.2 * h, 0.6 * w, 0.7 * h], "score": 0.9, "label": "circle"},
                {"box": [-5.0, -5.0, w + 10.0, 0.5 * h], "score": 0.5, "label": "square"},  # clipped to the image
                {"box": [0.0, 0.0, 4.0, 4.0], "score": 0.1, "label": "star"}]})  # under the default threshold
        return results


def red_square_png(size=(120, 90), square=(30, 20, 70, 60)) -> bytes:
    """A grey image with a red rectangle (x1, y1, x2, y2, exclusive) as PNG bytes."""
    pixels = np.full((size[1], size[0], 3), 128, np.uint8)
    x1, y1, x2, y2 = square
    pixels[y1:y2, x1:x2] = (230, 20, 20)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def seg_package(tmp_path_factory) -> Path:
    return write_segmentation_package(tmp_path_factory.mktemp("dense") / "seg")


@pytest.fixture(scope="module")
def det_package(tmp_path_factory) -> Path:
    return write_fake_detection_package(tmp_path_factory.mktemp("dense") / "det")


def _client(package, runtime=None, **settings):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    return fastapi_testclient.TestClient(create_app(ServerSettings(str(package), **settings), runtime))


def test_segmentation_mask_png_is_at_the_original_size_and_marks_the_object(seg_package):
    with _client(seg_package) as client:
        response = client.post("/v1/predict", files={"file": ("red.png", red_square_png(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "segment" and len(body["predictions"]) == 1
    answer = body["predictions"][0]
    assert (answer["filename"], answer["task"], answer["width"], answer["height"]) == ("red.png", "segment", 120, 90)
    mask_image = Image.open(io.BytesIO(base64.b64decode(answer["mask_png"])))
    assert mask_image.mode == "P" and mask_image.size == (120, 90)
    mask = np.asarray(mask_image)
    truth = np.zeros((90, 120), bool)
    truth[20:60, 30:70] = True
    assert (mask[truth] == 1).mean() > 0.97 and (mask[~truth] == 0).mean() > 0.97  # only edges may differ
    assert abs(answer["class_fractions"]["blob"] - (mask == 1).mean()) < 1e-5
    assert abs(sum(answer["class_fractions"].values()) - 1) < 1e-6
    assert mask_image.info["transparency"][0] == 0  # background is transparent, so the page can overlay it


def test_segmentation_rle_decodes_to_the_same_mask(seg_package):
    from pycocotools import mask as mask_utils

    data = red_square_png((64, 48), (8, 8, 40, 30))
    with _client(seg_package) as client:
        png = client.post("/v1/predict", files={"file": ("a.png", data, "image/png")}).json()["predictions"][0]
        rle = client.post("/v1/predict?format=rle", files={"file": ("a.png", data, "image/png")}).json()
        assert client.post("/v1/predict?format=gif", files={"file": ("a.png", data, "image/png")}).status_code == 422
    answer = rle["predictions"][0]
    assert "mask_png" not in answer and set(answer["rle"]) == {"background", "blob"}
    blob = mask_utils.decode({"size": answer["rle"]["blob"]["size"], "counts": answer["rle"]["blob"]["counts"]})
    expected = np.asarray(Image.open(io.BytesIO(base64.b64decode(png["mask_png"])))) == 1
    assert blob.shape == (48, 64) and np.array_equal(blob.astype(bool), expected)


def test_detection_boxes_are_in_original_pixels_clipped_and_thresholded(det_package):
    runtime = FakeDetector(det_package)
    with _client(det_package, runtime) as client:
        body = client.post("/v1/predict", files=[("file", ("a.png", red_square_png((200, 100)), "image/png")),
                                                 ("file", ("b.png", red_square_png((50, 80)), "image/png"))]).json()
        low = client.post("/v1/predict?score_threshold=0.05",
                          files={"file": ("a.png", red_square_png((200, 100)), "image/png")}).json()
        assert client.post("/v1/predict?score_threshold=2",
                           files={"file": ("a.png", red_square_png(), "image/png")}).status_code == 422
    assert body["task"] == "detect" and runtime.calls == 2  # one model call per request
    first, second = body["predictions"]
    assert (first["width"], first["height"], second["width"], second["height"]) == (200, 100, 50, 80)
    assert first["detections"] == [{"box": [20.0, 20.0, 120.0, 70.0], "score": 0.9, "label": "circle"},
                                   {"box": [0.0, 0.0, 200.0, 50.0], "score": 0.5, "label": "square"}]
    assert second["detections"][0]["box"] == [5.0, 16.0, 30.0, 56.0]
    assert [d["label"] for d in low["predictions"][0]["detections"]] == ["circle", "square", "star"]


def test_onnx_detection_package_boxes_are_scaled_back_to_the_upload(tmp_path):
    package = write_detection_package(tmp_path / "det")
    with _client(package) as client:
        body = client.post("/v1/predict?score_threshold=0.1",
                           files={"file": ("wide.png", red_square_png((128, 64)), "image/png")}).json()
    # the 128 x 64 upload is fed as 32 x 16: the model's pixels are 4 x 4 of the upload's
    assert body["predictions"][0]["detections"] == [
        {"box": [16.0, 8.0, 48.0, 40.0], "score": 0.8, "label": "circle"},
        {"box": [0.0, 0.0, 32.0, 32.0], "score": 0.2, "label": "square"}]


def test_detection_package_runtime_never_imports_torch(tmp_path):
    package = write_detection_package(tmp_path / "det")
    image = tmp_path / "a.png"
    image.write_bytes(red_square_png((64, 64)))
    code = (
        "import sys\nfrom PIL import Image\n"
        "from pixelforge.deploy.runtime import load_runtime\n"
        f"rt = load_runtime({str(package)!r})\n"
        f"found = rt.predict_images([Image.open({str(image)!r})])[0]['detections']\n"
        "print(rt.task, found[0]['label'], found[0]['box'], 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["detect", "circle", "[8.0,", "4.0,", "24.0,", "20.0]", "False"]


def test_model_and_health_say_the_task(det_package, seg_package):
    with _client(det_package, FakeDetector(det_package)) as client:
        health, model = client.get("/healthz").json(), client.get("/v1/model").json()
        assert 'id="canvas"' in client.get("/").text
    assert health["task"] == "detect" and health["model"] == "fake-detector"
    assert model["task"] == "detect" and model["classes"] == DET_CLASSES and set(model["colors"]) == set(DET_CLASSES)
    assert model["model_card"] == CARD and model["limits"]["score_threshold"] == 0.3
    with _client(seg_package) as client:
        model = client.get("/v1/model").json()
    assert model["task"] == "segment" and model["name"] == "seg" and model["colors"]["blob"].startswith("#")


@pytest.mark.parametrize("case,status", [("bytes", 413), ("pixels", 413), ("not_image", 415), ("truncated", 400),
                                         ("files", 413), ("no_file_field", 400)])
def test_dense_limits_and_errors_are_json(seg_package, case, status):
    png = red_square_png((120, 90))
    requests = {
        "bytes": {"files": {"file": ("big.png", b"\x89PNG" + b"\0" * 60_000, "image/png")}},
        "pixels": {"files": {"file": ("wide.png", red_square_png((400, 300)), "image/png")}},
        "not_image": {"files": {"file": ("notes.txt", b"hello, not an image", "text/plain")}},
        "truncated": {"files": {"file": ("cut.png", png[: len(png) // 2], "image/png")}},
        "files": {"files": [("file", ("a.png", png, "image/png"))] * 3},
        "no_file_field": {"files": {"image": ("a.png", png, "image/png")}},
    }
    with _client(seg_package, max_bytes=50_000, max_pixels=100_000, max_files=2) as client:
        response = client.post("/v1/predict", **requests[case])
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_dense_api_key_is_required_when_set(det_package):
    files = {"file": ("a.png", red_square_png(), "image/png")}
    with _client(det_package, FakeDetector(det_package), api_key="s3cret") as client:
        assert client.post("/v1/predict", files=files).status_code == 401
        assert client.get("/v1/model").status_code == 401
        assert client.post("/v1/predict", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200


def test_segmentation_package_runtime_never_imports_torch(seg_package, tmp_path):
    image = tmp_path / "red.png"
    image.write_bytes(red_square_png())
    code = (
        "import sys\nfrom PIL import Image\n"
        "from pixelforge.deploy.runtime import load_runtime\n"
        "from pixelforge.deploy.serve.server import ServerSettings, create_app\n"
        f"rt = load_runtime({str(seg_package)!r})\n"
        f"mask = rt.predict_images([Image.open({str(image)!r})])[0]['mask']\n"
        "create_app(ServerSettings('x'), rt)\n"
        "print(rt.task, mask.shape, int(mask.max()), 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["segment", "(90,", "120)", "1", "False"]


def test_not_a_package_keeps_the_clear_error(tmp_path):
    from pixelforge.deploy.runtime import load_runtime
    from pixelforge.errors import PixelforgeError

    with pytest.raises(PixelforgeError, match="not a pixelforge package"):
        load_runtime(tmp_path)
    with pytest.raises(PixelforgeError, match="no such package folder"):
        load_runtime(tmp_path / "missing")


def _browser(playwright):
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=path, args=[
        "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])


def _upload_on_page(app, image: Path, screenshot: Path, ready: str) -> dict:
    """Open the page, upload `image`, wait for `ready`; what the page shows, and a screenshot."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    from tests.deploy.conftest import live_server

    with live_server(app) as url, sync_api.sync_playwright() as playwright:
        browser = _browser(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url + "/")
            page.wait_for_selector("#model-card table")  # the card's table is a real table, not pipes
            page.set_input_files("#file-input", str(image))
            page.wait_for_selector(ready, timeout=30_000)
            shown = page.evaluate("""() => {
                const canvas = document.getElementById("canvas");
                const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                return {width: canvas.width, height: canvas.height, pixels: Array.from(pixels),
                        rows: [...document.querySelectorAll(".dense-row")].map((r) => r.dataset.label),
                        title: document.getElementById("dense-title").textContent,
                        card: document.getElementById("model-card").innerHTML,
                        error: document.getElementById("error").textContent};
            }""")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    shown["pixels"] = np.asarray(shown["pixels"], np.uint8).reshape(shown["height"], shown["width"], 4)[..., :3]
    return shown


def test_web_page_draws_detection_boxes(det_package, tmp_path):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    image = tmp_path / "grey.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(image)
    app = create_app(ServerSettings(str(det_package)), FakeDetector(det_package))
    shown = _upload_on_page(app, image, tmp_path / "detect_page.png", "#result.shown .dense-row")
    print(f"\ndetection page screenshot: {tmp_path / 'detect_page.png'}")
    assert shown["error"] == "" and shown["rows"] == ["circle", "square"] and shown["title"] == "2 objects found"
    scale = shown["width"] / 300
    assert shown["width"] >= 300 and abs(shown["height"] - 200 * scale) <= 1  # the image's aspect ratio
    # the circle box [30, 40, 180, 140] is stroked in its colour (#e6194b); inside the box the image stays grey
    edge = shown["pixels"][round(90 * scale), round(30 * scale) - 2:round(30 * scale) + 3].astype(int)
    assert np.abs(edge - (0xE6, 0x19, 0x4B)).sum(axis=1).min() < 60
    assert np.abs(shown["pixels"][round(120 * scale), round(100 * scale)].astype(int) - 128).max() < 3
    assert "<th" in shown["card"] and "mAP@50" in shown["card"] and "| 0.91" not in shown["card"]


def test_web_page_overlays_the_segmentation_mask(seg_package, tmp_path):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    image = tmp_path / "red.png"
    image.write_bytes(red_square_png((120, 90), (30, 20, 70, 60)))
    shown = _upload_on_page(create_app(ServerSettings(str(seg_package))), image, tmp_path / "segment_page.png",
                            "#result.shown .dense-row")
    print(f"\nsegmentation page screenshot: {tmp_path / 'segment_page.png'}")
    assert shown["error"] == "" and shown["rows"] == ["background", "blob"]
    pixels, scale = shown["pixels"].astype(int), shown["width"] / 120
    assert abs(shown["height"] - 90 * scale) <= 1
    # inside the square the red (230, 20, 20) is tinted towards the blob colour (128, 0, 0); outside stays grey
    inside, outside = pixels[round(40 * scale), round(50 * scale)], pixels[round(80 * scale), round(10 * scale)]
    assert abs(inside[0] - (0.45 * 230 + 0.55 * 128)) < 10
    assert np.abs(outside - 128).max() < 3


class FakeInstanceSegmenter(FakeDetector, InstanceRuntime):
    """Two objects with masks: an L-shaped circle-labelled mask (not symmetric, so a row/column mix-up shows) and a
    square-labelled block that overlaps it (the fake model call, the instance runtime's answers)."""

    def predict_images(self, images):
        results = []
        for image in images:
            w, h = image.size
            circle = np.zeros((h, w), bool)
            circle[40:140, 30:60] = True  # the L's stem: tall and narrow
            circle[110:140, 30:180] = True  # its foot: wide and short
            square = np.zeros((h, w), bool)
            square[20:60, 200:280] = True
            results.append({"detections": [
                {"box": [30.0, 40.0, 180.0, 140.0], "score": 0.9, "label": "circle", "mask": circle},
                {"box": [200.0, 20.0, 280.0, 60.0], "score": 0.8, "label": "square", "mask": square}]})
        return results


def test_web_page_paints_instance_masks_under_their_boxes(tmp_path):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    package = write_fake_detection_package(tmp_path / "inst", task="instance")
    image = tmp_path / "grey.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(image)
    app = create_app(ServerSettings(str(package)), FakeInstanceSegmenter(package))
    shown = _upload_on_page(app, image, tmp_path / "instance_page.png", "#result.shown .dense-row")
    print(f"\ninstance page screenshot: {tmp_path / 'instance_page.png'}")
    assert shown["error"] == "" and shown["rows"] == ["circle", "square"]
    pixels, scale = shown["pixels"].astype(int), shown["width"] / 300

    def at(x, y):
        return pixels[round(y * scale), round(x * scale)]

    tinted = np.array([0xE6, 0x19, 0x4B]) * 0.45 + 128 * 0.55  # the circle colour at 45% over grey
    for x, y in [(45, 60), (45, 125), (150, 125)]:  # in the stem, the corner, the foot
        assert np.abs(at(x, y) - tinted).max() < 12, (x, y, at(x, y))
    for x, y in [(120, 70), (100, 170), (250, 120)]:  # inside the circle's box but off its mask; outside both
        assert np.abs(at(x, y) - 128).max() < 3, (x, y, at(x, y))
    assert np.abs(at(240, 40) - 128).max() > 20  # the square's mask is painted too


@pytest.mark.parametrize("query", ["top_k=0", "score_threshold=2", "format=gif", "top_k=many"])
def test_a_bad_query_parameter_answers_422_with_one_line(det_package, query):
    with _client(det_package, FakeDetector(det_package)) as client:
        response = client.post(f"/v1/predict?{query}", files={"file": ("a.png", red_square_png(), "image/png")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and query.split("=")[0] in detail, detail


def test_a_gan_package_refuses_uploads_and_negative_seeds_in_one_line(tmp_path):
    """A generator takes no images: /v1/predict answers 404 naming /v1/generate, and a negative seed 422 (both were
    500s); `pixelforge generate PACKAGE --seed -1` is one line (was a numpy ValueError traceback)."""
    from pixelforge.deploy.runtime.registry import load_runtime
    from pixelforge.deploy.serve.server import ServerSettings, create_app
    from pixelforge.errors import PixelforgeError
    from tests.deploy.conftest import write_gan_package

    package = write_gan_package(tmp_path / "gan")
    with fastapi_testclient.TestClient(create_app(ServerSettings(str(package)))) as client:
        assert len(client.post("/v1/generate?n=2&seed=3").json()["images_png"]) == 2
        upload = client.post("/v1/predict", files={"file": ("a.png", red_square_png(), "image/png")})
        assert upload.status_code == 404 and "/v1/generate" in upload.json()["detail"]
        negative = client.post("/v1/generate?seed=-1")
        assert negative.status_code == 422 and "seed" in negative.json()["detail"]
    with pytest.raises(PixelforgeError, match="seed -1: give a whole number from 0 up"):
        load_runtime(package).generate_folder(tmp_path / "out", 2, seed=-1)
    assert not (tmp_path / "out").exists()
