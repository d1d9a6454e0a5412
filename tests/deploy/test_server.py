"""The HTTP API: predictions, limits and errors as JSON, the API key, micro-batching, the page and the docs."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from pixelforge.errors import PixelforgeError

fastapi_testclient = pytest.importorskip("fastapi.testclient")


def _client(package, **settings):
    from pixelforge.deploy.serve.server import ServerSettings, create_app

    return fastapi_testclient.TestClient(create_app(ServerSettings(str(package), **settings)))


def _jpeg(size=(120, 90)) -> bytes:
    buf = io.BytesIO()
    rgb = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, "JPEG")
    return buf.getvalue()


def test_predict_one_and_many(tiny_package, sample_images):
    from pixelforge.deploy.runtime import Runtime

    expected = Runtime(tiny_package).predict_files([str(p) for p in sample_images], top_k=2)
    with _client(tiny_package) as client:
        one = client.post("/v1/predict", files={"file": ("a.png", sample_images[0].read_bytes(), "image/png")})
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["precision"] == "int8" and len(body["predictions"]) == 1
        many = client.post("/v1/predict?top_k=2", files=[("file", (p.name, p.read_bytes(), "image/png"))
                                                          for p in sample_images])
        predictions = many.json()["predictions"]
    assert [p["filename"] for p in predictions] == [p.name for p in sample_images]
    assert [p["label"] for p in predictions] == [e["label"] for e in expected]
    assert all(len(p["top_k"]) == 2 and abs(p["score"] - e["score"]) < 1e-5 for p, e in zip(predictions, expected))


def test_health_model_page_and_docs(tiny_package):
    with _client(tiny_package) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        model = client.get("/v1/model").json()
        assert model["classes"] == ["circle", "square", "star", "triangle"]
        assert "## Parity with PyTorch" in model["model_card"] and model["parity"]["fp32"]["passed"]
        page = client.get("/")
        assert page.status_code == 200 and 'id="file-input"' in page.text
        assert client.get("/docs").status_code == 200
        schema = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["requestBody"]
        assert "file" in schema["content"]["multipart/form-data"]["schema"]["properties"]


@pytest.mark.parametrize("case,status", [("bytes", 413), ("pixels", 413), ("not_image", 415), ("truncated", 400),
                                         ("not_multipart", 415), ("no_file_field", 400)])
def test_limits_and_errors_are_json(tiny_package, case, status):
    jpeg = _jpeg()
    requests = {
        "bytes": {"files": {"file": ("big.jpg", b"\xff" * 60_000, "image/jpeg")}},
        "pixels": {"files": {"file": ("wide.jpg", _jpeg((400, 300)), "image/jpeg")}},
        "not_image": {"files": {"file": ("notes.txt", b"hello, not an image", "text/plain")}},
        "truncated": {"files": {"file": ("cut.jpg", jpeg[: len(jpeg) // 2], "image/jpeg")}},
        "not_multipart": {"content": jpeg, "headers": {"content-type": "image/jpeg"}},
        "no_file_field": {"files": {"image": ("a.jpg", jpeg, "image/jpeg")}},
    }
    with _client(tiny_package, max_bytes=50_000, max_pixels=100_000) as client:
        response = client.post("/v1/predict", **requests[case])
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_api_key_is_required_when_set(tiny_package, sample_images):
    files = {"file": ("a.png", sample_images[0].read_bytes(), "image/png")}
    with _client(tiny_package, api_key="s3cret") as client:
        assert client.get("/healthz").json()["auth_required"] is True
        assert client.post("/v1/predict", files=files).status_code == 401
        assert client.post("/v1/predict", files=files, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/v1/model").status_code == 401
        assert client.post("/v1/predict", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.post("/v1/predict", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_concurrent_requests_are_micro_batched(tiny_package, sample_images):
    data = sample_images[1].read_bytes()
    with _client(tiny_package, max_batch=16, max_wait_ms=50) as client:
        batcher = client.app.state.batcher

        def post(_):
            return client.post("/v1/predict", files={"file": ("s.png", data, "image/png")}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, range(32)))
    assert codes == [200] * 32
    assert batcher.images_run == 32 and batcher.batches_run < 32  # some requests shared a model call


def test_uploads_are_never_written_to_disk(tiny_package, monkeypatch):
    import tempfile

    import starlette.formparsers

    def refuse(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    big = _jpeg((1600, 1200))  # over Starlette's 1 MB in-memory spool limit if it were used
    assert len(big) > 1024 * 1024
    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", refuse)
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    monkeypatch.setattr(starlette.formparsers, "SpooledTemporaryFile", refuse)
    with _client(tiny_package) as client:
        assert client.post("/v1/predict", files={"file": ("big.jpg", big, "image/jpeg")}).status_code == 200


def test_a_port_another_program_holds_is_one_line():
    """uvicorn logged its own ERROR line and exited 1; now the port is tried first and named."""
    import socket

    from pixelforge.deploy.serve.server import check_port_free

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PixelforgeError, match=rf"127\.0\.0\.1:{port}: cannot listen there .*--port"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again once closed


def test_every_server_setting_is_a_serve_option(monkeypatch, tmp_path):
    """`--max-files` was a setting (413 past 32 files) with no option to change it, though docs/reliability.md
    named it; each setting now reaches the server from `pixelforge serve`."""
    from dataclasses import fields

    import typer
    from typer.testing import CliRunner

    import pixelforge.deploy.runtime as runtime
    import pixelforge.deploy.serve.server as server
    from pixelforge.cli import app

    options = {param.name for param in typer.main.get_command(app).commands["serve"].params}
    assert {field.name for field in fields(server.ServerSettings)} <= options
    seen = {}
    from pixelforge.deploy.runtime.base import TaskRuntime

    monkeypatch.setattr(runtime, "runtime_class", lambda package: TaskRuntime)  # a task the server answers
    monkeypatch.setattr(server, "serve", lambda settings, **_: seen.update(settings=settings))
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--max-files", "3"])
    assert result.exit_code == 0, result.output
    assert seen["settings"].max_files == 3


def test_out_of_memory_in_the_model_is_a_503_naming_the_limits_to_lower(tiny_package, sample_images, monkeypatch):
    """ONNX Runtime's "Failed to allocate memory" (an Exception, not a RuntimeError) and a MemoryError were a bare
    500 "Internal Server Error" with the traceback in the log."""
    from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

    from pixelforge.deploy.runtime.classify import Runtime as ClassifyRuntime

    errors = iter([RuntimeException("Failed to allocate memory for requested buffer of size 8589934592"), MemoryError()])

    def run_out(self, *args, **kwargs):
        raise next(errors)

    monkeypatch.setattr(ClassifyRuntime, "predict_batch", run_out)
    with _client(tiny_package, max_batch=4) as client:
        for _ in range(2):
            answer = client.post("/v1/predict", files={"file": ("a.png", sample_images[0].read_bytes(), "image/png")})
            assert answer.status_code == 503, answer.text
            assert answer.json()["detail"].startswith("out of memory running the model on 1 image(s) (--max-batch 4, "
                                                      "--max-pixels 50000000): send fewer or smaller images")
