"""Exporting a denoising run to an ONNX package (`pixelforge export RUN` for `--task denoise` runs).

    PACKAGE/model.onnx        input "image" [1, C, H, W] float in [0, 1], H and W dynamic (multiples of
                              preprocess.json's "multiple"); output "denoised", same shape
            preprocess.json   channels, multiple, scaling, the run's noise spec (the web page adds it to uploads)
            classes.json      [] (denoising has no classes; the runtime reads every package the same way)
            package.json      "task": "denoise", model file, input/output names, export settings
            model.fp16.onnx   with --fp16: the same model in fp16, inputs and outputs float32
            model.int8.onnx   with --int8: static QDQ int8 calibrated on noisy training images (the default precision)
            parity.json       ONNX Runtime vs PyTorch on validation images at their own sizes: max |delta|,
                              PSNR of the ONNX output against PyTorch's, and each side's PSNR against the clean
                              image; the same per added precision

The runtime (deploy/runtime/denoise.py) pads by reflection to the multiple, runs, crops back and rounds to the
image's bit depth; the parity check feeds both the same padded tensor of noisy validation images of different
sizes (so the dynamic axes are exercised) and refuses the export if they differ by more than 1e-3 anywhere.
An fp16 model may lose at most 0.1 dB of PSNR against the clean images (mean over the parity images) relative to
PyTorch, an int8 model at most `max_int8_drop` dB (default 0.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.deploy.export.onnx import export_traced, quiet_converters
from pixelforge.deploy.export.precision import (check_calibration, other_calibration, psnr_db, refuse, write_fp16,
                                               write_int8)
from pixelforge.deploy.runtime.denoise import model_input
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.denoise.card import card_facts

MAX_ABS_DIFF = 1e-3
FP16_MAX_PSNR_DROP = 0.1
OFFERS = ("fp16", "int8", "max_int8_drop", "calibration", "calibration_images")


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 4,
                   opset: int = 17, format: str | None = "onnx", fp16: bool = False, int8: bool = False,
                   max_int8_drop: float = 0.5, calibration: str = "minmax", calibration_images: int = 16,
                   **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    With `fp16` / `int8`, also model.fp16.onnx / model.int8.onnx, refused (nothing written) when they lose more PSNR
    than allowed: 0.1 dB for fp16, `max_int8_drop` dB for int8.

    Example:
        >>> package = export_package("runs/denoise", "packages/denoise")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["passed"]  # doctest: +SKIP
        True
    """
    import torch

    from pixelforge.tasks.denoise.evaluate import load_denoise_run, select_items

    reject_options("denoise", options, format, OFFERS)
    check_calibration(calibration)
    out = Path(out)
    require_new_out(out)
    run = load_denoise_run(run_dir)
    items, split = select_items(run, data, "val" if data is None else None)
    pre = {"task": "denoise", "channels": run.channels, "multiple": run.multiple, "layout": "NCHW",
           "scale": "1/255 for 8-bit, 1/65535 for 16-bit", "pad": "reflect, bottom and right, to the multiple",
           "noise": run.noise, "output": "denoised image in [0, 1]: crop, clip, round to the input's bit depth"}
    model = run.model.eval().to(memory_format=torch.contiguous_format)
    example = torch.rand(1, run.channels, 2 * max(run.multiple, 32), 3 * max(run.multiple, 32))
    with staged_folder(out) as staging, quiet_converters():
        export_traced(model, (example,), staging / "model.onnx", ["image"], ["denoised"], opset,
                      dynamic_axes={"image": {2: "height", 3: "width"}, "denoised": {2: "height", 3: "width"}})
        write_dense_package_files(staging, run.run_dir, pre, [], {
            "task": "denoise", "output_name": "denoised", "model": run.config.model,
            "backbone": run.config.encoder if run.config.model == "unet" else None,
            "input_shape": [1, run.channels, "height", "width"]}, opset,
            write_card=lambda path: write_task_card(run.run_dir, card_facts, dest=path))
        report = _parity(run, staging, items[:parity_images], split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch differ by {report['max_abs_diff']:.2e} "
                                  f"(allowed {MAX_ABS_DIFF:g}); report the model and opset {opset}")
        parity_items = items[:parity_images]
        if int8:
            train = select_items(run, None, "train")[0] if data is None else parity_items
            train = train[:calibration_images]
            write_int8(staging, (_noisy_input(run, item) for item in train), calibration, len(train))
            report["int8"] = _check_drop("int8", _parity(run, staging, parity_items, split, "model.int8.onnx"),
                                         max_int8_drop, "--max-int8-drop",
                                         f"try --calibration {other_calibration(calibration)}, raise "
                                         "--max-int8-drop, or export without --int8")
            write_json(staging / "parity.json", report)
        if fp16:
            write_fp16(staging)
            report["fp16"] = _check_drop("fp16", _parity(run, staging, parity_items, split, "model.fp16.onnx"),
                                         FP16_MAX_PSNR_DROP, "fp16's limit", "export without --fp16")
            write_json(staging / "parity.json", report)
    return out


def _noisy_input(run, item) -> np.ndarray:
    """The model input of `item`'s noisy version (its paired noisy image, or the run's noise), as the runtime feeds it."""
    from pixelforge.tasks.denoise.data import load_pair
    from pixelforge.tasks.denoise.evaluate import noisy_version

    clean, noisy = load_pair(item, run.channels)
    return model_input(noisy_version(run, item, clean, noisy), run.channels, run.multiple)


def _check_drop(precision: str, report: dict, allowed: float, limit: str, fix: str) -> dict:
    """`report` with its PSNR drop against PyTorch (dB, mean over the images) judged against `allowed`."""
    drop = report["reference_psnr"] - report["psnr"]
    report = {**report, "psnr_drop_db": drop, "max_drop_db": allowed, "passed": drop <= allowed}
    del report["allowed_abs_diff"]
    if not report["passed"]:
        refuse(precision, f"PSNR {report['psnr']:.2f} dB vs PyTorch's {report['reference_psnr']:.2f} dB, a drop of "
               f"{drop:.3f} dB; allowed {allowed:g} dB ({limit})", fix)
    return report


def _parity(run, package: Path, items, split: str, model_file: str = "model.onnx") -> dict:
    """The package's `model_file` against PyTorch on `items`: max |delta|, worst PSNR of ONNX vs PyTorch, and the
    mean PSNR of each side's output against the clean image."""
    import onnxruntime as ort
    import torch

    from pixelforge.tasks.denoise.data import load_pair
    from pixelforge.tasks.denoise.evaluate import noisy_version

    session = ort.InferenceSession(str(package / model_file), providers=["CPUExecutionProvider"])
    max_diff, worst_psnr, sizes, psnrs = 0.0, float("inf"), [], []
    for item in items:
        clean, noisy = load_pair(item, run.channels)
        x = model_input(noisy_version(run, item, clean, noisy), run.channels, run.multiple)
        with torch.inference_mode():
            expected = run.model(torch.from_numpy(x)).numpy()
        got = session.run(["denoised"], {"image": x})[0]
        diff = np.abs(expected - got)
        max_diff = max(max_diff, float(diff.max()))
        mse = float((diff ** 2).mean())
        worst_psnr = min(worst_psnr, float("inf") if mse == 0 else -10 * np.log10(mse))
        sizes.append(list(x.shape[2:]))
        truth = model_input(clean, run.channels, 1)[..., : clean.shape[0], : clean.shape[1]]
        # each output clipped to [0, 1], as the runtime rounds it, against the clean image
        psnrs.append([psnr_db(truth, np.clip(y[..., : clean.shape[0], : clean.shape[1]], 0, 1))
                      for y in (expected, got)])
    reference, psnr = (float(np.mean(side)) for side in zip(*psnrs)) if psnrs else (0.0, 0.0)
    return {"split": split, "images": len(items), "input_sizes": sizes, "max_abs_diff": max_diff,
            "min_psnr_onnx_vs_torch": worst_psnr, "reference_psnr": reference, "psnr": psnr,
            "allowed_abs_diff": MAX_ABS_DIFF, "passed": max_diff <= MAX_ABS_DIFF}
