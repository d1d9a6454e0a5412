"""Loading a package's model: an ONNX Runtime session, or a caller-supplied loader for other formats.

The runtime never imports torch. A `--format torchscript` package needs it, so its loader lives on the torch side
(`pixelforge.deploy.export.torchscript.TORCH_LOADERS`) and is handed in by the callers that may import torch (the
CLI commands, the server, the video loop, the classification exporter's parity check):

    forward = load_model(package, "fp32", loaders=TORCH_LOADERS)   # forward(batch ndarray) -> ndarray
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np

from pixelforge.errors import PixelforgeError

Forward = Callable[[np.ndarray], np.ndarray]
# format name -> loader(model path, threads) -> forward; the loader's `provider` attribute names it for /v1/model.
ModelLoaders = dict[str, Callable[..., Forward]]


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
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors (InvalidProtobuf, Fail, ...) share no base
        if not Path(path).is_file():
            raise PixelforgeError(f"{path}: model file not found; the package is incomplete, export it again") from None
        too_new = _newer_than_runtime(str(exc), ort.__version__)
        if too_new:
            raise PixelforgeError(f"{path}: {too_new}") from None
        reason = str(exc).strip().splitlines()[0][:200]
        raise PixelforgeError(f"{path}: ONNX Runtime cannot load this model ({reason}); the file is damaged or "
                              "from a newer exporter: export the package again") from None


def _newer_than_runtime(message: str, version: str) -> str | None:
    """What ONNX Runtime's refusal of a model newer than it means, in a phrase with the fix (its own message names
    the opset only after 300 characters of C++ signature); None for any other load error."""
    opset = re.search(r"Opset (\d+) is under development.*?till opset (\d+)", message, re.S)
    if opset:
        written, supported = opset.groups()
        kind = f"exported with ONNX opset {written}; the installed onnxruntime {version} supports opsets up to {supported}"
    else:
        ir = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", message)
        if not ir:
            return None
        kind = (f"written in ONNX IR version {ir.group(1)}; the installed onnxruntime {version} reads IR versions up "
                f"to {ir.group(2)}")
    return f"{kind}: upgrade with pip install -U onnxruntime, or export the package again with this pixelforge"


def load_model(package, precision: str, threads: int | None = None, providers: list[str] | None = None,
               spin: bool = True, loaders: ModelLoaders | None = None) -> tuple[Forward, list[str]]:
    """(forward(batch) -> first output, the providers running it) for `package`'s model at `precision`.

    ONNX packages get an ONNX Runtime session; other formats need a loader in `loaders` (one-line error otherwise).
    """
    path = package.model_path(precision)
    if package.format == "onnx":
        session = onnx_session(path, threads, providers, spin)
        input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name
        return (lambda batch: session.run([output_name], {input_name: batch})[0]), session.get_providers()
    loader = (loaders or {}).get(package.format)
    if loader is None:
        raise PixelforgeError(f"{package.folder}: a {package.format} package needs PyTorch, which the torch-free "
                              f"runtime never imports; run it with the `pixelforge` CLI, or export with --format onnx")
    return loader(path, threads), [getattr(loader, "provider", package.format)]
