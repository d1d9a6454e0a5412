"""Turning a PyTorch module into an ONNX (or TorchScript) file, the way every pixelforge exporter needs it.

    export_dynamic_batch   an image model with a dynamic batch axis: torch.export-based exporter first, the
                           TorchScript-based one when that fails (classification)
    export_traced          the TorchScript-based exporter with fixed names and optional dynamic axes (detectors with
                           their NMS, segmenters with a fixed input size)
    export_torchscript     a traced TorchScript file (`--format torchscript`)
    quiet_converters       keeps the converters' per-pass INFO logging out of the export's output
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

log = logging.getLogger("pixelforge")


def export_dynamic_batch(model, path: Path, example, opset: int, input_name: str = "image",
                         output_name: str = "logits") -> Path:
    """`model` (eval mode) to ONNX at `path` with a dynamic batch axis; `example` is a [N, C, H, W] tensor."""
    import torch

    try:
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=[output_name],
                          dynamo=True, dynamic_shapes=({0: batch},), opset_version=opset, external_data=False,
                          verbose=False)
    except Exception as exc:  # noqa: BLE001 - the torch.export-based exporter fails in many ways; fall back
        log.info("torch.export-based ONNX export failed (%s); using the TorchScript-based exporter", exc)
        path.unlink(missing_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=[output_name],
                              dynamo=False, opset_version=min(opset, 17),
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    return path


def export_traced(module, args: tuple, path: Path, input_names: list[str], output_names: list[str], opset: int,
                  dynamic_axes: dict | None = None) -> Path:
    """The TorchScript-based ONNX exporter (it traces torchvision's detectors whole, NMS included)."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic (e.g. in torchvision's transform)
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, dynamic_axes=dynamic_axes)
    return path


def export_torchscript(model, path: Path, example) -> Path:
    import torch

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        torch.jit.trace(model, example, check_trace=False).save(str(path))
    return path


@contextlib.contextmanager
def quiet_converters():
    """The ONNX converters log every graph pass at INFO; the export's own lines are the ones worth reading."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "onnxruntime", "torch.onnx")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    # onnxruntime.quantization logs to the root logger itself; a filter there drops only root's own records.
    root_filter = _BelowWarning()
    logging.getLogger().addFilter(root_filter)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(root_filter)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING
