"""Deployment fixtures: one exported package of the tiny run (fp32 + int8), hand-made ONNX packages of the box
and mask tasks (no training), and a real server on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_package(tiny_run, tmp_path_factory) -> Path:
    """`tiny_run` exported to ONNX with an int8 model (about 10 s)."""
    from pixelforge.tasks.classify.export import export_package

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


SEG_CLASSES = ["background", "blob"]
DET_CLASSES = ["circle", "square", "star"]
CARD = "# Model card: fake\n\n## Metrics\n\nmetric | value\n:--- | ---:\nmAP@50 | 0.91\nmAP | 0.55\n"


def write_segmentation_package(folder: Path, size: int = 64) -> Path:
    """A segmentation package whose model marks pixels with red > green + 0.2 as class 1 ("blob")."""
    import onnx
    from onnx import TensorProto, helper

    # logits_background = 0; logits_blob = 10 * (r - g) - 2, on inputs scaled to [0, 1] (mean 0, std 1).
    weight = np.zeros((2, 3, 1, 1), np.float32)
    weight[1, 0], weight[1, 1] = 10.0, -10.0
    bias = np.array([0.0, -2.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])], "blob",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, size, size])],
        [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, bias.shape, bias)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    files = {
        "preprocess.json": {"task": "segment", "size": [size, size], "resize": "stretch-bilinear", "channels": 3,
                            "bit_depth": 8, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "layout": "NCHW"},
        "classes.json": SEG_CLASSES,
        "package.json": {"task": "segment", "format": "onnx", "models": {"fp32": "model.onnx"},
                         "default_precision": "fp32", "input_name": "image", "output_name": "logits",
                         "num_classes": 2, "arch": "conv1x1", "backbone": "none"},
    }
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    (folder / "model_card.md").write_text(CARD)
    return folder


def write_fake_detection_package(folder: Path, task: str = "detect") -> Path:
    """The JSON files of a detection (or instance) package (the fake runtime below answers instead of a model)."""
    folder.mkdir(parents=True)
    files = {"preprocess.json": {"task": task, "max_size": 64}, "classes.json": DET_CLASSES,
             "package.json": {"task": task, "format": "onnx", "models": {"fp32": "model.onnx"},
                              "default_precision": "fp32", "name": "fake-detector", "arch": "fcos"}}
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    (folder / "model_card.md").write_text(CARD)
    return folder


def write_detection_package(folder: Path, size: int = 32, masks: np.ndarray | None = None) -> Path:
    """A detection package in the detectors' contract (float [3, H, W] in [0, 1], longest side `size`, boxes in
    input pixels, labels 1..K) whose ONNX graph answers two fixed boxes: circle [4, 2, 12, 10] at 0.8 and square
    [0, 0, 8, 8] at 0.2. With `masks` ([2, 1, h, w] probabilities) it is an instance package answering them too."""
    import onnx
    from onnx import TensorProto, helper

    constants = {"boxes": np.array([[4, 2, 12, 10], [0, 0, 8, 8]], np.float32),
                 "scores": np.array([0.8, 0.2], np.float32), "labels": np.array([1, 2], np.int64)}
    if masks is not None:
        constants["masks"] = np.asarray(masks, np.float32)
    nodes = [helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name + "_value", TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT, value.shape,
        value.ravel())) for name, value in constants.items()]
    outputs = [helper.make_tensor_value_info(name, TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT,
                                             list(value.shape)) for name, value in constants.items()]
    graph = helper.make_graph(nodes, "fixed-boxes",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])],
                              outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    task = "detect" if masks is None else "instance"
    write_fake_detection_package(folder, task)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "preprocess.json").write_text(json.dumps({"task": task, "img_size": size}))
    return folder


def write_instance_package(folder: Path, size: int = 32) -> Path:
    """`write_detection_package`'s two boxes with masks: the circle's covers the left half of the input, the
    square's its top quarter (8 x 8 probabilities, resized to the image by the runtime)."""
    masks = np.full((2, 1, 8, 8), 0.1, np.float32)
    masks[0, 0, :, :4] = 0.9
    masks[1, 0, :2, :] = 0.7
    return write_detection_package(folder, size, masks)


def write_gan_package(folder: Path, latent_dim: int = 4) -> Path:
    """An unconditional GAN package whose generator tiles each noise vector into an 8 x 8 grey image (tanh)."""
    import onnx
    from onnx import TensorProto, helper

    folder.mkdir(parents=True)
    graph = helper.make_graph(
        [helper.make_node("Tile", ["z", "repeats"], ["tiled"]),
         helper.make_node("Reshape", ["tiled", "shape"], ["flat"]), helper.make_node("Tanh", ["flat"], ["images"])],
        "tiles", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", latent_dim])],
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor("repeats", TensorProto.INT64, [2], [1, 64 // latent_dim]),
         helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    files = {"preprocess.json": {"task": "gan", "conditional": False, "latent_dim": latent_dim},
             "classes.json": [], "package.json": {"task": "gan", "format": "onnx", "models": {"fp32": "model.onnx"},
                                                  "default_precision": "fp32", "input_name": "z",
                                                  "output_name": "images"}}
    for name, data in files.items():
        (folder / name).write_text(json.dumps(data))
    return folder
