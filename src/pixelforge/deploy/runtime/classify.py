"""The classification runtime: a package's model in ONNX Runtime over arrays, images and files, without torch.

`Runtime` loads the package's model (int8 when the package has one, unless told otherwise) and offers three levels:
`logits` on a ready NCHW batch, `predict_images` on PIL images, and `predict_files` on paths (batched, decoded in
threads, with the same result dicts as `pixelforge.predict`). It is the classification `TaskRuntime`: uploads are
centre crops that concurrent requests share model calls for, answers are top-k labels, frames get their label.
A TorchScript package needs a loader from the torch side (`loaders=`, see session.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from pixelforge.data.images import ImageReadError
from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.package import Package, read_package
from pixelforge.deploy.runtime.preprocess import (decode_bytes, decode_file, frame_to_image, resize_and_crop,
                                                  to_model_input, upright_size)
from pixelforge.deploy.runtime.session import ModelLoaders, load_model


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _default_precision(package: Package) -> str:
    """The package's default, except that an fp16 model is preferred where ONNX Runtime has CUDA."""
    if "fp16" in package.precisions and package.format == "onnx":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return "fp16"
    return package.manifest["default_precision"]


class Runtime(TaskRuntime):
    """A classification package ready to predict.

    Example:
        >>> rt = Runtime("packages/shapes")  # doctest: +SKIP
        >>> rt.predict_files(["star.png"], top_k=2)[0]["label"]  # doctest: +SKIP
        'star'
    """

    task = "classify"
    title = "Image classification"
    batch_across_requests = True  # every upload becomes a crop of the same size: one model call for many
    hidden_settings = ("score_threshold",)

    def __init__(self, package: str | Path | Package, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True, loaders: ModelLoaders | None = None):
        self.package = package if isinstance(package, Package) else read_package(package)
        self.precision = precision or _default_precision(self.package)
        self.preprocess = self.package.preprocess
        self.classes = self.package.classes
        self._forward, self.providers = load_model(self.package, self.precision, threads, providers, spin, loaders)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits (float32, N x classes) for a normalized NCHW float32 batch."""
        return np.asarray(self._forward(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)

    def crop(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop one RGB image: the uint8 HWC pixels the model will see."""
        return resize_and_crop(image, self.preprocess)

    def logits_for_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        return self.logits(to_model_input(crops, self.preprocess))

    @property
    def temperature(self) -> float:
        """The run's fitted softmax temperature (1.0 for packages without one): scores are softmax(logits / T)."""
        return float(self.package.manifest.get("temperature", 1.0))

    def rank(self, logits: np.ndarray, top_k: int = 1) -> list[list[dict]]:
        """Top-k [{label, score}] per row, scores as calibrated softmax probabilities rounded to 6 digits."""
        probs = softmax(logits / self.temperature)
        k = min(top_k, len(self.classes))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[{"label": self.classes[i], "score": round(float(row[i]), 6)} for i in idx]
                for row, idx in zip(probs, order)]

    def predict_images(self, images: list[Image.Image], top_k: int = 1) -> list[list[dict]]:
        if not images:
            return []
        return self.rank(self.logits_for_crops([self.crop(img) for img in images]), top_k)

    def logits_for_files(self, paths: list[str], batch_size: int = 32,
                         progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[str], list[dict]]:
        """Logits for the readable files, those files (in order), and an error entry per unreadable one."""
        chunks, kept, errors = [], [], []
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            crops = []
            for path, crop in zip(chunk, self._decode_many(chunk)):
                if isinstance(crop, str):
                    errors.append({"path": path, "label": None, "score": None, "error": crop})
                else:
                    crops.append(crop)
                    kept.append(path)
            if crops:
                chunks.append(self.logits_for_crops(crops))
            if progress is not None:
                progress(len(chunk))
        logits = np.concatenate(chunks) if chunks else np.zeros((0, len(self.classes)), np.float32)
        return logits, kept, errors

    def predict_files(self, paths: list[str], out: str | Path | None = None, *, top_k: int = 1, batch_size: int = 32,
                      progress: Callable[[int], None] | None = None, **options) -> list[dict]:
        """One dict per image, like `pixelforge.predict`: `path` (as given), `task`, `label`, `score`, `top_k`;
        unreadable files come last with `label` None and an `error` message. Nothing is written (`out` unused)."""
        self.reject_options("predict", options)
        logits, kept, errors = self.logits_for_files(paths, batch_size, progress)
        results = [{"path": path, "label": ranked[0]["label"], "score": ranked[0]["score"], "top_k": ranked}
                   for path, ranked in zip(kept, self.rank(logits, top_k))]
        return self.with_common_keys(results + errors)

    @staticmethod
    def describe_result(result: dict) -> str:
        """The top-k labels and scores, or why the file could not be read."""
        ranked = "  ".join(f"{t['label']} {t['score']:.3f}" for t in result.get("top_k", []))
        return ranked or result.get("error") or ""

    def _decode_many(self, paths: Iterable[str]) -> list:
        def work(path: str):
            try:
                return self.crop(decode_file(path, min_side=self.preprocess.resize_short_side))
            except ImageReadError as exc:
                return str(exc)

        # PIL releases the GIL while decoding and resizing, so threads overlap file decoding well.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            return list(pool.map(work, paths))

    # ---- the TaskRuntime interface: serving and video -------------------------------------------------------
    def decode_upload(self, data: bytes, name: str, max_pixels: int | None) -> "Upload":
        """An upload's centre crop (decoded at reduced size where JPEG allows: only the crop is needed), with the
        upload's own upright size, which the answer reports as every task's does."""
        crop = self.crop(decode_bytes(data, self.preprocess.resize_short_side, max_pixels, name or "upload"))
        return Upload(crop, *upright_size(data))

    def predict_batch(self, uploads: list["Upload"]) -> np.ndarray:
        return self.logits_for_crops([upload.crop for upload in uploads])

    def answer(self, upload: "Upload", logits: np.ndarray, *, top_k: int = 1, **options) -> dict:
        ranked = self.rank(logits[None], top_k)[0]
        return {"task": self.task, "width": upload.width, "height": upload.height, "label": ranked[0]["label"],
                "score": ranked[0]["score"], "top_k": ranked}

    def response(self, model_name: str, answers: list[dict]) -> dict:
        # Classification's answer predates tasks: "model" stays the manifest's name, as clients read it; "task" is
        # added, as every other task's response has it.
        return {"model": self.package.manifest.get("name"), "task": self.task, "precision": self.precision,
                "predictions": answers}

    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        """The top {label, score} of one BGR frame."""
        return self.predict_images([frame_to_image(frame)], top_k=1)[0][0]

    def describe(self, prediction: dict) -> str:
        return f"{prediction['label']}  {100 * prediction['score']:.1f}%"

    def label(self, prediction: dict) -> str:
        return prediction["label"]


@dataclass(frozen=True)
class Upload:
    """One upload for the server: the centre crop the model sees, and the upload's own (upright) size."""

    crop: np.ndarray
    width: int
    height: int
