"""Exporting a classification run: the run folder becomes a package folder, checked against PyTorch before it is kept.

The package is built in a hidden staging folder next to `--out`, the parity check runs on it exactly as a user
would run it (the torch-free `Runtime`), and only a package that passes is moved to `--out`; a failing one is
deleted and the error says by how much it missed. An existing non-empty `--out` is never touched. The package's
files are listed in `pixelforge.deploy.runtime.package`; `ClassifyTask.export` calls `export_package`.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pixelforge.deploy.export import parity as par
from pixelforge.deploy.export.card import write_model_card
from pixelforge.deploy.export.folder import exported_with, require_new_out, staged_folder, write_json
from pixelforge.deploy.export.onnx import export_dynamic_batch, export_torchscript, quiet_converters
from pixelforge.deploy.runtime.package import CARD_FILE, CLASSES_FILE, MANIFEST_FILE, PARITY_FILE, PREPROCESS_FILE
from pixelforge.deploy.runtime.preprocess import Preprocess
from pixelforge.errors import PixelforgeError
from pixelforge.formats import package_stamp

log = logging.getLogger("pixelforge")
FORMATS = ("onnx", "torchscript")


@dataclass
class ExportResult:
    """The package folder with its parity report and export time. It is also a path to the package (`os.PathLike`,
    and `result / "model.onnx"`), as the other tasks' exports return the folder itself, so code written for any
    task (`pixelforge.predict(pixelforge.export(run, out), paths)`, `Path(result)`) works with a classifier's."""

    package_dir: Path
    parity: dict
    seconds: float

    def __fspath__(self) -> str:
        return os.fspath(self.package_dir)

    def __truediv__(self, name) -> Path:
        return self.package_dir / name


@dataclass(frozen=True)
class ExportOptions:
    """The export settings; they are recorded in package.json and the model card."""

    format: str = "onnx"
    int8: bool = False
    fp16: bool = False
    parity_images: int = 256
    calibration_images: int = 128
    calibration: str = "minmax"
    tolerance: float = 1e-3
    fp16_tolerance: float = 5e-2
    max_int8_drop: float = 1.0
    opset: int = 18


def export_package(run_dir: str | Path, out: str | Path, format: str = "onnx", int8: bool = False, fp16: bool = False,
                   data: str | None = None, **settings) -> ExportResult:
    """Export the run's best checkpoint to `out` and verify it against the PyTorch model.

    Args:
        run_dir: a run folder written by `pixelforge train`.
        out: the package folder to create (must not exist, or be empty).
        format: onnx | torchscript.
        int8: also write a static int8 ONNX model calibrated on training images (the runtime's default then).
        fp16: also write an fp16 ONNX model (for GPU runtimes).
        data: the data to take validation/calibration images from (default: the run's own, as in its config).
        **settings: other `ExportOptions` fields: parity_images (256), calibration_images (128), calibration
            (minmax | entropy | percentile), tolerance (1e-3) and fp16_tolerance (5e-2) on max |Δlogit| relative to
            max(1, max |logit|), max_int8_drop (1.0 accuracy points), opset (18).

    Raises:
        PixelforgeError: bad options, a non-empty `out`, data not found, or a parity check that fails.

    Example:
        >>> export_package("runs/shapes", "packages/shapes", int8=True).parity["fp32"]["passed"]  # doctest: +SKIP
        True
    """
    started = time.perf_counter()
    out = Path(out)
    unknown = sorted(set(settings) - {f.name for f in fields(ExportOptions)})
    if unknown:  # else a TypeError from the dataclass (`pixelforge.export(run, out, int9=True)`)
        raise PixelforgeError(f"export: {', '.join('--' + k.replace('_', '-') for k in unknown)} not available for "
                              f"task 'classify'; its options: format, int8, fp16, data, "
                              f"{', '.join(f.name for f in fields(ExportOptions) if f.name not in ('format', 'int8', 'fp16'))}")
    options = ExportOptions(format=format, int8=int8, fp16=fp16, **settings)
    _check_options(out, options)
    from pixelforge.tasks.classify.inference import load_run

    loaded = load_run(run_dir)
    spec = loaded.model.spec
    pre = Preprocess(loaded.config.img_size, loaded.short_side, tuple(spec.mean), tuple(spec.std))
    val_samples, train_samples = _samples(loaded, data, options.parity_images, options.calibration_images)
    with staged_folder(out) as staging:
        with quiet_converters():
            report = _build(staging, loaded, pre, val_samples, train_samples, options)
    return ExportResult(out, report, round(time.perf_counter() - started, 2))


def _build(staging: Path, loaded, pre: Preprocess, val_samples, train_samples, opt: ExportOptions) -> dict:
    """Write every package file into `staging`, checking each model against PyTorch as soon as it exists."""
    cfg = loaded.config
    models = {"fp32": _write_model(loaded.model, staging, opt.format, cfg.img_size, opt.opset)}
    manifest = {
        **package_stamp(), "name": f"{cfg.model}-{Path(loaded.run_dir).name}", "backbone": cfg.model,
        "format": opt.format, "models": models, "default_precision": "fp32", "input_name": "image",
        "output_name": "logits", "num_classes": len(loaded.classes),
        "temperature": loaded.temperature,  # the runtime's scores are softmax(logits / temperature)
        "export": {**asdict(opt), **exported_with(opt.opset), "run": Path(loaded.run_dir).resolve().name,
                   "checkpoint": "best.ckpt",
                   "dynamic_batch": True, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    write_json(staging / PREPROCESS_FILE, pre.to_json())
    write_json(staging / CLASSES_FILE, loaded.classes)
    write_json(staging / MANIFEST_FILE, manifest)

    reference, kept, targets = _pytorch_logits(loaded, val_samples)
    report = {"split": "val", "images": len(kept)}

    def measure(precision: str) -> dict:
        return par.compare_logits(reference, _package_logits(staging, precision, kept), targets)

    report["fp32"] = _require("fp32", par.check_logits(measure("fp32"), reference, opt.tolerance),
                              "a conversion problem: try --format torchscript, or report the model")
    if opt.int8:
        models["int8"] = _write_int8(staging, pre, train_samples, opt.calibration)
        manifest["default_precision"] = "int8"
        manifest["export"]["calibration_images"] = len(train_samples)
        write_json(staging / MANIFEST_FILE, manifest)
        checked = par.check_accuracy_drop(measure("int8"), opt.max_int8_drop)
        report["int8"] = _require("int8", checked, int8_fix(checked, opt.calibration))
    if opt.fp16:
        from pixelforge.deploy.export.quantize import convert_fp16

        models["fp16"] = convert_fp16(staging / models["fp32"], staging / "model.fp16.onnx").name
        write_json(staging / MANIFEST_FILE, manifest)
        report["fp16"] = _require("fp16", par.check_logits(measure("fp16"), reference, opt.fp16_tolerance),
                                  f"raise --fp16-tolerance (now {opt.fp16_tolerance}) or export without --fp16")
    write_json(staging / PARITY_FILE, report)
    write_model_card(staging / CARD_FILE, Path(loaded.run_dir), cfg, loaded.classes,
                     {**manifest, "preprocess": pre.to_json()}, report)
    return report


def _check_options(out: Path, opt: ExportOptions) -> None:
    if opt.format not in FORMATS:
        raise PixelforgeError(f"--format {opt.format!r}: choose one of {', '.join(FORMATS)}")
    if opt.format != "onnx" and (opt.int8 or opt.fp16):
        raise PixelforgeError("--int8 and --fp16 need --format onnx (ONNX Runtime does the quantization)")
    if opt.calibration not in ("minmax", "entropy", "percentile"):
        raise PixelforgeError(f"--calibration {opt.calibration!r}: choose minmax, entropy or percentile")
    require_new_out(out)


def _allowed_drop(report: dict) -> str:
    """The one drop the check applied: --max-int8-drop, or one image's worth when that is more."""
    allowed = f"allowed drop {report['allowed_drop_points']:g} points"
    if report["allowed_drop_points"] > report["max_drop_points"]:
        return f"{allowed}: one image of {report['images']}, more than --max-int8-drop {report['max_drop_points']:g}"
    return f"{allowed} (--max-int8-drop)"


def int8_fix(report: dict, calibration: str) -> str:
    """What to try when int8 loses too much accuracy: the other calibrations, and a limit above the one applied."""
    others = " or ".join(m for m in ("entropy", "percentile", "minmax") if m != calibration)
    return (f"try --calibration {others}, raise --max-int8-drop above {report['allowed_drop_points']:g}, "
            "or export without --int8")


def _require(name: str, report: dict, fix: str) -> dict:
    if not report["passed"]:
        limit = (f"allowed {report['allowed_max_abs_logit_diff']:.2e}" if "allowed_max_abs_logit_diff" in report
                 else _allowed_drop(report))
        raise PixelforgeError(f"export refused: {name} parity failed ({par.describe(name, report)}; {limit}); {fix}")
    log.info("parity %s", par.describe(name, report))
    return report


def _samples(loaded, data: str | None, parity_images: int, calibration_images: int):
    """Up to `parity_images` validation and `calibration_images` training samples, a seeded random choice."""
    from dataclasses import replace

    from pixelforge.tasks.classify.task import prepare_data

    cfg = loaded.config if data is None else loaded.config.model_copy(update={"data": data})
    try:
        source, _ = prepare_data(cfg)
    except PixelforgeError as exc:
        raise PixelforgeError(f"cannot read the run's data for the parity check ({exc}); pass --data") from None
    val, train = source.split("val"), source.split("train")
    if not val:
        raise PixelforgeError(f"{cfg.data}: no validation images for the parity check; pass --data with a val split")
    rng = random.Random(0)
    val = sorted(rng.sample(val, parity_images), key=lambda s: str(s.path)) if len(val) > parity_images else val
    train = rng.sample(train, min(calibration_images, len(train)))
    known = set(loaded.classes)
    val = [s if s.label in known else replace(s, label="") for s in val]
    return val, train


def _pytorch_logits(loaded, samples):
    from pixelforge.tasks.classify.inference import run_inference

    # The model's own outputs on the CPU, as the package computes them (a GPU's TF32 convolutions would differ).
    logits, kept, _ = run_inference(loaded, samples, calibrated=False, device="cpu")
    idx = {c: i for i, c in enumerate(loaded.classes)}
    targets = np.array([idx.get(s.label, -1) for s in kept], dtype=np.int64)
    return logits.numpy(), kept, targets


def _package_logits(package_dir: Path, precision: str, samples) -> np.ndarray:
    from pixelforge.deploy.export.torchscript import TORCH_LOADERS
    from pixelforge.deploy.runtime import Runtime

    runtime = Runtime(package_dir, precision, loaders=TORCH_LOADERS)
    logits, kept, errors = runtime.logits_for_files([str(s.path) for s in samples])
    if errors:  # PyTorch read these same files a moment ago
        raise PixelforgeError(f"{errors[0]['error']}; the file changed during export, export again")
    return logits


def _write_model(model, folder: Path, format: str, img_size: int, opset: int) -> str:
    import torch

    example = torch.randn(2, 3, img_size, img_size)
    model = model.eval().to(memory_format=torch.contiguous_format)
    if format == "torchscript":
        return export_torchscript(model, folder / "model.pt", example).name
    return export_dynamic_batch(model, folder / "model.onnx", example, opset).name


def _write_int8(folder: Path, pre: Preprocess, train_samples, calibration: str) -> str:
    from pixelforge.data.images import ImageReadError
    from pixelforge.deploy.runtime.preprocess import decode_file, resize_and_crop, to_model_input

    def batches(size: int = 16):
        crops = []
        for sample in train_samples:
            try:
                crops.append(resize_and_crop(decode_file(sample.path, pre.resize_short_side), pre))
            except ImageReadError:
                continue
            if len(crops) == size:
                yield to_model_input(crops, pre)
                crops = []
        if crops:
            yield to_model_input(crops, pre)

    from pixelforge.deploy.export.quantize import quantize_int8

    log.info("int8: calibrating on %d training images (%s)", len(train_samples), calibration)
    return quantize_int8(folder / "model.onnx", folder / "model.int8.onnx", batches(), calibration).name
