"""Inference on an exported package with ONNX Runtime, and no torch import on the way.

`Runtime` loads the package's model (int8 when the package has one, unless told otherwise) into an ONNX Runtime
session and offers three levels: `logits` on a ready NCHW batch, `predict_images` on PIL images, and
`predict_files` on paths (batched, decoded in threads, with the same result dicts as `pixelforge.predict`).
TorchScript packages go through `torch.jit` instead, the one case where torch is imported.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from pixelforge.data.images import ImageReadError
from pixelforge.deploy.package import Package, read_package
from pixelforge.deploy.preprocess import decode_file, resize_and_crop, to_model_input


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def onnx_session(path: Path, threads: int | None = None, providers: list[str] | None = None, spin: bool = True):
    """An ONNX Runtime session with full graph optimization; CUDA first when this onnxruntime build has it.

    `spin=False` lets idle worker threads sleep instead of busy-waiting between operators: slightly slower on
    dedicated cores, much faster when the cores are shared (a server decoding uploads, a busy machine).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = ort.get_available_providers()
    chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(str(path), sess_options=options, providers=chosen)


def _default_precision(package: Package) -> str:
    """The package's default, except that an fp16 model is preferred where ONNX Runtime has CUDA."""
    if "fp16" in package.precisions and package.format == "onnx":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            return "fp16"
    return package.manifest["default_precision"]


class _TorchScriptModel:
    """The torch-using fallback for `--format torchscript` packages (same call signature as the ONNX path)."""

    def __init__(self, path: Path, threads: int | None):
        import warnings

        import torch

        if threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.torch = torch

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.module(self.torch.from_numpy(batch)).float().numpy()


class Runtime:
    """A package ready to predict.

    Example:
        >>> rt = Runtime("packages/shapes")  # doctest: +SKIP
        >>> rt.predict_files(["star.png"], top_k=2)[0]["label"]  # doctest: +SKIP
        'star'
    """

    def __init__(self, package: str | Path | Package, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True):
        self.package = package if isinstance(package, Package) else read_package(package)
        self.precision = precision or _default_precision(self.package)
        self.preprocess = self.package.preprocess
        self.classes = self.package.classes
        path = self.package.model_path(self.precision)
        if self.package.format == "torchscript":
            self._forward = _TorchScriptModel(path, threads)
            self.providers = ["torch.jit"]
        else:
            session = onnx_session(path, threads, providers, spin)
            input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
            self._forward = lambda batch: session.run([output_name], {input_name: batch})[0]
            self.providers = session.get_providers()
            self.session = session

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Logits (float32, N x classes) for a normalized NCHW float32 batch."""
        return np.asarray(self._forward(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)

    def crop(self, image: Image.Image) -> np.ndarray:
        """Resize and centre-crop one RGB image: the uint8 HWC pixels the model will see."""
        return resize_and_crop(image, self.preprocess)

    def logits_for_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        return self.logits(to_model_input(crops, self.preprocess))

    def rank(self, logits: np.ndarray, top_k: int = 1) -> list[list[dict]]:
        """Top-k [{label, score}] per row, scores as softmax probabilities rounded to 6 digits."""
        probs = softmax(logits)
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

    def predict_files(self, paths: list[str], top_k: int = 1, batch_size: int = 32,
                      progress: Callable[[int], None] | None = None) -> list[dict]:
        """One dict per image, like `pixelforge.predict`: `path` (as given), `label`, `score`, `top_k`;
        unreadable files come last with `label` None and an `error` message."""
        logits, kept, errors = self.logits_for_files(paths, batch_size, progress)
        results = [{"path": path, "label": ranked[0]["label"], "score": ranked[0]["score"], "top_k": ranked}
                   for path, ranked in zip(kept, self.rank(logits, top_k))]
        return results + errors

    def _decode_many(self, paths: Iterable[str]) -> list:
        def work(path: str):
            try:
                return self.crop(decode_file(path, min_side=self.preprocess.resize_short_side))
            except ImageReadError as exc:
                return str(exc)

        # PIL releases the GIL while decoding and resizing, so threads overlap file decoding well.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            return list(pool.map(work, paths))
