"""Deployment fixtures: one exported package of the tiny run (fp32 + int8), and a real server on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_package(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported to ONNX with an int8 model (about 10 s)."""
    from pixelforge.deploy.export import export_package

    # The tiny model is barely trained, so int8 may flip near-ties: the accuracy rule is not what is tested here.
    out = tmp_path_factory.mktemp("packages") / "tiny"
    return export_package(tiny_run, out, int8=True, max_int8_drop=100.0).package_dir


@pytest.fixture(scope="session")
def sample_images(shapes_dir) -> list[Path]:
    """One validation image of each shape class."""
    return [next((shapes_dir / "val" / name).glob("*.png")) for name in ("circle", "square", "star", "triangle")]


@contextlib.contextmanager
def live_server(app):
    """Run `app` under uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
