"""What the detection, instance and segmentation runtimes share: the package, its class names, one ONNX session.

A classification package is served crop by crop (classify.py). Box and mask packages answer whole images at each
image's own size instead, so their runtimes take PIL images or HxWxC arrays of any size, and `predict_images`
answers one dict per image:

    detect:   {"detections": [{"box": [x1, y1, x2, y2], "score": float, "label": str}, ...]}
              boxes in the image's own pixels, best score first
    instance: as detect, each detection also with "mask": bool [H, W] at the image's own size
    segment:  {"mask": int64 [H, W] class ids at the image's own size}

Each runtime holds one ONNX Runtime session, so a server never re-reads the package per request.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.package import DensePackage, read_dense_package
from pixelforge.deploy.runtime.session import ModelLoaders, onnx_session

SERIAL_SETTINGS = ("top_k", "max_batch", "max_wait_ms")  # classification's serve settings: no use here


def as_array(image) -> np.ndarray:
    """A PIL image or array as HxWxC (C = 1 or 3) uint8/uint16, the form the exporters' preprocessing takes."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB", "I;16") else image)
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


class DenseRuntime(TaskRuntime):
    """A box or mask package with one ONNX Runtime session (ONNX only: `loaders` is accepted and unused)."""

    hidden_settings = SERIAL_SETTINGS

    def __init__(self, package: str | Path | DensePackage, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True, loaders: ModelLoaders | None = None):
        self.package = package if isinstance(package, DensePackage) else read_dense_package(package)
        self.classes = self.package.classes
        self.precision = precision or self.package.manifest.get("default_precision", "fp32")
        self.session = onnx_session(self.package.model_path(self.precision), threads, providers, spin)
        self.providers = self.session.get_providers()

    def colors(self) -> dict[str, str]:
        """{class: hex colour}: what the web page and the video draw each class in."""
        raise NotImplementedError

    def metadata(self) -> dict:
        return self.package.metadata(self.colors())

    @staticmethod
    def describe_result(result: dict) -> str:
        """The result's summary (how many objects, or the classes' shares), or why the file could not be read."""
        if result.get("error") or result.get("summary"):
            return result.get("error") or result.get("summary")
        detections = result.get("detections")
        if not detections:
            return "no objects"
        return f"{len(detections)} object(s): " + ", ".join(f"{d['label']} {d['score']:.2f}" for d in detections)

