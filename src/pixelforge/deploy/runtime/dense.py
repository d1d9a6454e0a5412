"""Detection and segmentation packages behind one small interface, for `serve` and `video` (torch-free).

A classification package is served by `runtime.Runtime` (crops, micro-batched logits). Detection and
segmentation packages answer whole images instead, so the server and the video loop talk to them through
`DenseRuntime`:

    task                "detect" | "segment"
    classes             class names (detect: category names in label order; segment: index = class id)
    package             a `DensePackage` (manifest, metadata for /v1/model, model card)
    precision, providers
    predict_images(images) -> one dict per image (PIL images or HxWxC uint8 arrays, any sizes):
        detect:  {"detections": [{"box": [x1, y1, x2, y2], "score": float, "label": str}, ...]}
                 boxes in the image's own pixels, best score first
        instance: as detect, each detection also with "mask": bool [H, W] at the image's own size
        segment: {"mask": int64 [H, W] class ids at the image's own size}

The adapters below put the exporters' ONNX models and pre/post-processing (deploy/export_detection.py,
deploy/export_segmentation.py) behind that interface with ONNX Runtime sessions of their own, so a server holds
one session and never re-reads the package per request. `load_runtime` picks by package.json's "task".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from pixelforge.deploy.draw import box_color, mask_colors
from pixelforge.deploy.package import CLASSES_FILE, MANIFEST_FILE, PREPROCESS_FILE, Package, read_json_file
from pixelforge.errors import PixelforgeError

DENSE_TASKS = ("detect", "segment", "instance")


def package_task(folder: str | Path) -> str:
    """The task a package was exported for: package.json's "task" ("classify" for packages without one)."""
    folder = Path(folder)
    if not (folder / PREPROCESS_FILE).is_file():
        from pixelforge.deploy.package import read_package

        read_package(folder)  # raises the classification reader's error: no folder, or not a package
    return read_json_file(folder / MANIFEST_FILE).get("task", "classify")


@dataclass
class DensePackage(Package):
    """A detection or segmentation package's JSON files (its preprocess.json is the exporter's own dict); model
    files, model card and parity report are read as for classification."""

    preprocess: dict

    @property
    def task(self) -> str:
        return self.manifest["task"]

    def colors(self) -> dict[str, str]:
        """{class: hex colour}: what the web page and the video draw each class in."""
        if self.task == "segment":
            return mask_colors(self.classes)
        return {name: box_color(i) for i, name in enumerate(self.classes)}

    def metadata(self) -> dict:
        """What `GET /v1/model` answers for this package (no file system paths)."""
        return {
            "name": self.manifest.get("name", self.folder.name), "task": self.task,
            "arch": self.manifest.get("arch"), "backbone": self.manifest.get("backbone"),
            "format": self.manifest.get("format", "onnx"),
            "precision": self.manifest.get("default_precision", "fp32"), "precisions": self.precisions,
            "classes": self.classes, "colors": self.colors(),
            "preprocess": {k: v for k, v in self.preprocess.items() if k != "run"},
            "parity": self.parity, "pixelforge_version": self.manifest.get("pixelforge_version"),
        }


def read_dense_package(folder: str | Path) -> DensePackage:
    """Read a detection or segmentation package's JSON files (no model is loaded)."""
    folder = Path(folder)
    task = package_task(folder)
    if task not in DENSE_TASKS:
        raise PixelforgeError(f"{folder}: a {task!r} package, not a detection or segmentation one")
    return DensePackage(folder, read_json_file(folder / MANIFEST_FILE), read_json_file(folder / PREPROCESS_FILE),
                        read_json_file(folder / CLASSES_FILE))


class DenseRuntime(Protocol):
    task: str
    classes: list[str]
    package: DensePackage
    precision: str
    providers: list[str]

    def predict_images(self, images: list) -> list[dict]: ...


def as_array(image) -> np.ndarray:
    """A PIL image or array as HxWxC (C = 1 or 3) uint8/uint16, the form the exporters' preprocessing takes."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB", "I;16") else image)
    image = np.asarray(image)
    return image[..., None] if image.ndim == 2 else image


class _OnnxDense:
    """What both adapters share: the package, its class names and one ONNX Runtime session."""

    def __init__(self, package: str | Path | DensePackage, precision: str | None, threads: int | None,
                 providers: list[str] | None, spin: bool):
        from pixelforge.deploy.runtime import onnx_session

        self.package = package if isinstance(package, DensePackage) else read_dense_package(package)
        self.task, self.classes = self.package.task, self.package.classes
        self.precision = precision or self.package.manifest.get("default_precision", "fp32")
        self.session = onnx_session(self.package.model_path(self.precision), threads, providers, spin)
        self.providers = self.session.get_providers()


class SegmentationRuntime(_OnnxDense):
    """A segmentation package: the exporter's resize + normalise, logits resized back, per-pixel argmax."""

    def predict_images(self, images: list) -> list[dict]:
        from pixelforge.deploy.export_segmentation import logits_to_mask, preprocess_image

        manifest, pre, results = self.package.manifest, self.package.preprocess, []
        for image in images:  # the exported graph has a fixed [1, C, S, S] input: one image per call
            array = as_array(image)
            logits = self.session.run([manifest["output_name"]],
                                      {manifest["input_name"]: preprocess_image(array, pre)})[0]
            results.append({"mask": logits_to_mask(logits, *array.shape[:2])})
        return results


def load_runtime(package: str | Path, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True):
    """The runtime for any package: `Runtime` for classification, a `DenseRuntime` for detection/segmentation.

    Example:
        >>> rt = load_runtime("packages/seg")  # doctest: +SKIP
        >>> rt.task, rt.predict_images([Image.open("scan.png")])[0]["mask"].shape  # doctest: +SKIP
        ('segment', (128, 128))
    """
    task = package_task(package)
    if task == "segment":
        return SegmentationRuntime(package, precision, threads, providers, spin)
    if task in ("detect", "instance"):  # instance: the detector plus a mask per detection
        from pixelforge.deploy.dense_detection import DetectionRuntime

        return DetectionRuntime(package, precision, threads, providers, spin)
    from pixelforge.deploy.runtime import Runtime

    return Runtime(package, precision, threads, providers, spin)
