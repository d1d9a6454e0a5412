"""fp16 and int8 copies of a task's fp32 ONNX package model, recorded in its package.json.

The box, mask and image tasks' exporters write `model.onnx` and check it; with `--fp16` / `--int8` they then call
`write_fp16` / `write_int8` (the classification machinery of quantize.py: fp16 with float32 inputs and outputs,
static QDQ int8 calibrated on training images) and judge the new model in the task's own terms (mask agreement,
mIoU, PSNR, ...). package.json lists each model under its precision, so `--precision fp16|int8` of predict, serve
and video picks it (`pixelforge.deploy.runtime.package`). As for classification, an int8 model becomes the
package's default precision.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from pixelforge.deploy.runtime.package import MANIFEST_FILE
from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")
CALIBRATIONS = ("minmax", "entropy", "percentile")


def check_calibration(calibration: str) -> None:
    if calibration not in CALIBRATIONS:
        raise PixelforgeError(f"--calibration {calibration!r}: choose {', '.join(CALIBRATIONS)}")


def add_model(staging: Path, precision: str, file: str, default: bool = False, key: str = "models",
              **settings) -> str:
    """List `file` under `precision` in the staged package.json's `key` (and make it the default); `settings` go to
    its "export" record. A package of two models (caption's encoder and decoder step, clip's image and text encoders)
    lists the second one's precisions under a key of its own."""
    path = staging / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest.setdefault(key, {})[precision] = file
    if default:
        manifest["default_precision"] = precision
    manifest["export"].update(settings)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return file


def copy_name(model: str, precision: str) -> str:
    """model.onnx -> model.fp16.onnx: the file name of `model`'s copy in `precision`."""
    return f"{Path(model).stem}.{precision}.onnx"


def write_fp16(staging: Path, model: str = "model.onnx", key: str = "models") -> Path:
    """model.fp16.onnx beside `model` (float32 inputs and outputs), listed in package.json's `key`."""
    from pixelforge.deploy.export.quantize import convert_fp16

    path = convert_fp16(staging / model, staging / copy_name(model, "fp16"))
    add_model(staging, "fp16", path.name, key=key, fp16=True)
    return path


def write_dynamic_int8(staging: Path, model: str, key: str = "models", default: bool = True) -> Path:
    """model.int8.onnx beside `model`: dynamic int8 of its matrix products and embeddings (weights int8, activations
    quantized per call, nothing to calibrate), listed in package.json's `key` (and as the default precision)."""
    from pixelforge.deploy.export.quantize import quantize_dynamic_int8

    path = quantize_dynamic_int8(staging / model, staging / copy_name(model, "int8"))
    add_model(staging, "int8", path.name, default=default, key=key, int8=True)
    return path


def write_int8(staging: Path, batches: Iterable[np.ndarray | dict], calibration: str, images: int,
               model: str = "model.onnx", what: str = "training images") -> Path:
    """model.int8.onnx (static QDQ) calibrated on `batches` (inputs preprocessed exactly as the runtime does; dicts
    of input name -> batch for a model of several inputs), listed in package.json as its default precision."""
    from pixelforge.deploy.export.quantize import quantize_int8

    log.info("int8: calibrating on %d %s (%s)", images, what, calibration)
    path = quantize_int8(staging / model, staging / copy_name(model, "int8"), batches, calibration)
    add_model(staging, "int8", path.name, default=True, int8=True, calibration=calibration,
              calibration_images=images)
    return path


def refuse(precision: str, measured: str, fix: str) -> None:
    """The one line a failed fp16/int8 check ends the export with (the staged package is then removed)."""
    raise PixelforgeError(f"export refused: {precision} parity failed ({measured}); {fix}")


# An image model's fp16 output must stay within the noise of 8-bit storage: 40 dB PSNR against PyTorch's output is
# an RMS error of 1 % of the range, about 2.5 grey levels, where a visible change begins.
FP16_MIN_PSNR = 40.0


def psnr_db(reference: np.ndarray, candidate: np.ndarray, peak: float = 1.0) -> float:
    """PSNR of `candidate` against `reference` in dB (100 for identical arrays)."""
    mse = float(((np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)) ** 2).mean())
    return 100.0 if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


# An image generator's int8 output is judged like a lossy-compressed image: 30 dB PSNR against PyTorch's output (an
# RMS error of 3 % of the range, about 8 grey levels) is where JPEG at its usual qualities lies; int8's rounding of
# every activation cannot reach fp16's 40 dB.
INT8_MIN_PSNR = 30.0


def check_fp16_psnr(report: dict, min_psnr: float | None = None) -> dict:
    """An image model's fp16 parity `report` (its "min_psnr_vs_torch") judged: refused below `min_psnr` dB."""
    min_psnr = FP16_MIN_PSNR if min_psnr is None else min_psnr
    return _check_psnr("fp16", report, min_psnr, "export without --fp16")


def check_int8_psnr(report: dict, calibration: str, min_psnr: float | None = None) -> dict:
    """An image model's int8 parity `report` judged as fp16's, against INT8_MIN_PSNR dB."""
    min_psnr = INT8_MIN_PSNR if min_psnr is None else min_psnr
    return _check_psnr("int8", report, min_psnr, f"try --calibration {other_calibration(calibration)}, or export "
                                                 "without --int8")


def other_calibration(calibration: str) -> str:
    """The calibration an int8 refusal suggests trying next."""
    return "entropy" if calibration != "entropy" else "percentile"


def write_encoder_pair(staging: Path, precision: str, encoder: str, companion: str, key: str,
                       batches: list | None = None, calibration: str = "minmax") -> None:
    """A two-model package's `precision` copies: int8 quantizes the image `encoder` statically on `batches` and its
    `companion` (a decoder step, a text tower: matrix products over tokens) dynamically; fp16 converts both. The
    companion's copies are listed under package.json's `key`."""
    if precision == "int8":
        write_int8(staging, batches, calibration, len(batches), model=encoder)
        write_dynamic_int8(staging, companion, key=key)
    else:
        write_fp16(staging, encoder)
        write_fp16(staging, companion, key=key)


def _check_psnr(precision: str, report: dict, min_psnr: float, fix: str) -> dict:
    report = {**report, "required_psnr_vs_torch": min_psnr, "passed": report["min_psnr_vs_torch"] >= min_psnr}
    if not report["passed"]:
        refuse(precision, f"worst PSNR against PyTorch's output {report['min_psnr_vs_torch']:.1f} dB, need "
               f"{min_psnr:g} dB", fix)
    return report
