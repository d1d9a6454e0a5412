"""Exporting a semantic-segmentation run to an ONNX package (`pixelforge export RUN` for `--task segment` runs).

    PACKAGE/model.onnx        fixed input [1, C, S, S] (S = the run's img_size), output logits [1, K, S, S]
            preprocess.json   size, resize rule, mean/std, channels, bit depth: everything needed to feed the model
            classes.json      class names, index = class id in the predicted masks
            package.json      "task": "segment", model file, input/output names, export settings
            parity.json       ONNX Runtime vs PyTorch: share of pixels whose predicted class agrees, max |Δlogit|

The package's preprocessing (`pixelforge.deploy.runtime.segment`: resize the whole image to S x S, 8-bit images
as 8-bit as training did, scale by bit depth, normalise; logits resized back before the argmax) is deliberately simple enough to re-implement anywhere.
Training resized the shorter side instead (no stretching), so the two agree exactly for square images and differ
slightly for elongated ones.

The export is refused unless at least 99.9% of the validation pixels get the same class from ONNX Runtime as
from PyTorch, both fed the same preprocessed tensor (the check isolates the conversion).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.runtime.segment import logits_to_mask, preprocess_image
from pixelforge.errors import PixelforgeError

MIN_AGREEMENT = 0.999


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 32,
                   opset: int = 17, format: str | None = "onnx", **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder; its parity.json holds the check. Raises PixelforgeError when ONNX Runtime and
    PyTorch agree on fewer than 99.9% of the validation pixels (nothing is left at `out` then), or for options a
    segmentation package cannot honour (`int8`, `fp16`, `format` other than onnx, ...).

    Example:
        >>> package = export_package("runs/segment-shapes", "packages/seg")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["pixel_agreement"]  # doctest: +SKIP
        1.0
    """
    from pixelforge.tasks.segment.evaluate import load_segmentation_run, select_mask_samples

    reject_options("segment", options, format)
    out = Path(out)
    require_new_out(out)
    run = load_segmentation_run(run_dir)
    samples, split = select_mask_samples(run, data, "val" if data is None else None)
    samples = samples[:parity_images]
    size = run.img_size
    pre = {"task": "segment", "size": [size, size], "resize": "stretch-bilinear", "channels": run.in_channels,
           "bit_depth": run.bit_depth, "scale": "1/255 for 8-bit, 1/65535 for 16-bit",
           "mean": run.mean, "std": run.std, "layout": "NCHW", "output": "logits; resize to the image, argmax"}
    with staged_folder(out) as staging:
        _write_onnx(run.model, staging / "model.onnx", run.in_channels, size, opset)
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "segment", "output_name": "logits", "num_classes": len(run.classes), "arch": run.model.arch,
            "backbone": run.model.backbone_name, "input_shape": [1, run.in_channels, size, size]}, opset)
        report = _parity(run, staging, pre, samples, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch agree on {100 * report['pixel_agreement']:.3f}% "
                                  f"of val pixels (need {100 * MIN_AGREEMENT:.1f}%); report the model and opset {opset}")
    return out


def _write_onnx(model, path: Path, channels: int, size: int, opset: int) -> None:
    import torch

    model = model.eval().to(memory_format=torch.contiguous_format)  # the input size is fixed: no dynamic axes
    export_traced(model, (torch.zeros(1, channels, size, size),), path, ["image"], ["logits"], opset)


def _parity(run, package: Path, pre: dict, samples, split: str) -> dict:
    import onnxruntime as ort
    import torch

    from pixelforge.data.masks.images import load_image_any

    session = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    same = total = 0
    max_diff = 0.0
    for sample in samples:
        image = load_image_any(sample.image)
        x = preprocess_image(image, pre)
        with torch.inference_mode():
            expected = run.model(torch.from_numpy(x)).numpy()
        got = session.run(["logits"], {"image": x})[0]
        max_diff = max(max_diff, float(np.abs(expected - got).max()))
        height, width = image.shape[:2]
        a, b = logits_to_mask(expected, height, width), logits_to_mask(got, height, width)
        same, total = same + int((a == b).sum()), total + a.size
    agreement = same / max(total, 1)
    return {"split": split, "images": len(samples), "pixels": total, "pixel_agreement": agreement,
            "max_abs_logit_diff": max_diff, "required_agreement": MIN_AGREEMENT, "passed": agreement >= MIN_AGREEMENT}
