"""Exporting a denoising run to an ONNX package (`pixelforge export RUN` for `--task denoise` runs).

    PACKAGE/model.onnx        input "image" [1, C, H, W] float in [0, 1], H and W dynamic (multiples of
                              preprocess.json's "multiple"); output "denoised", same shape
            preprocess.json   channels, multiple, scaling, the run's noise spec (the web page adds it to uploads)
            classes.json      [] (denoising has no classes; the runtime reads every package the same way)
            package.json      "task": "denoise", model file, input/output names, export settings
            parity.json       ONNX Runtime vs PyTorch on validation images at their own sizes: max |delta|, and
                              PSNR of the ONNX output against PyTorch's

The runtime (deploy/runtime/denoise.py) pads by reflection to the multiple, runs, crops back and rounds to the
image's bit depth; the parity check feeds both the same padded tensor of noisy validation images of different
sizes (so the dynamic axes are exercised) and refuses the export if they differ by more than 1e-3 anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.runtime.denoise import model_input
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.denoise.card import card_facts

MAX_ABS_DIFF = 1e-3


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 4,
                   opset: int = 17, format: str | None = "onnx", **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Example:
        >>> package = export_package("runs/denoise", "packages/denoise")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["passed"]  # doctest: +SKIP
        True
    """
    import torch

    from pixelforge.tasks.denoise.evaluate import load_denoise_run, select_items

    reject_options("denoise", options, format)
    out = Path(out)
    require_new_out(out)
    run = load_denoise_run(run_dir)
    items, split = select_items(run, data, "val" if data is None else None)
    pre = {"task": "denoise", "channels": run.channels, "multiple": run.multiple, "layout": "NCHW",
           "scale": "1/255 for 8-bit, 1/65535 for 16-bit", "pad": "reflect, bottom and right, to the multiple",
           "noise": run.noise, "output": "denoised image in [0, 1]: crop, clip, round to the input's bit depth"}
    model = run.model.eval().to(memory_format=torch.contiguous_format)
    example = torch.rand(1, run.channels, 2 * max(run.multiple, 32), 3 * max(run.multiple, 32))
    with staged_folder(out) as staging:
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
    return out


def _parity(run, package: Path, items, split: str) -> dict:
    import onnxruntime as ort
    import torch

    from pixelforge.tasks.denoise.data import load_pair
    from pixelforge.tasks.denoise.evaluate import noisy_version

    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    max_diff, worst_psnr, sizes = 0.0, float("inf"), []
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
    return {"split": split, "images": len(items), "input_sizes": sizes, "max_abs_diff": max_diff,
            "min_psnr_onnx_vs_torch": worst_psnr, "allowed_abs_diff": MAX_ABS_DIFF, "passed": max_diff <= MAX_ABS_DIFF}
