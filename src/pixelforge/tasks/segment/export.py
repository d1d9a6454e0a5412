"""Exporting a semantic-segmentation run to an ONNX package (`pixelforge export RUN` for `--task segment` runs).

    PACKAGE/model.onnx        fixed input [1, C, S, S] (S = the run's img_size), output logits [1, K, S, S]
            preprocess.json   size, resize rule, mean/std, channels, bit depth: everything needed to feed the model
            classes.json      class names, index = class id in the predicted masks
            package.json      "task": "segment", model file, input/output names, export settings
            model.fp16.onnx   with --fp16: the same model in fp16, inputs and outputs float32
            model.int8.onnx   with --int8: static QDQ int8 calibrated on training images (the default precision)
            parity.json       ONNX Runtime vs PyTorch: share of pixels whose predicted class agrees, max |Δlogit|,
                              mIoU of each side against the true masks; the same per added precision

The package's preprocessing (`pixelforge.deploy.runtime.segment`: resize the whole image to S x S, 8-bit images
as 8-bit as training did, scale by bit depth, normalise; logits resized back before the argmax) is deliberately simple enough to re-implement anywhere.
Training resized the shorter side instead (no stretching), so the two agree exactly for square images and differ
slightly for elongated ones.

The export is refused unless at least 99.9% of the validation pixels get the same class from ONNX Runtime as
from PyTorch, both fed the same preprocessed tensor (the check isolates the conversion). An fp16 model must agree
on at least 99% of the pixels (fp16 rounding flips near-tied pixels at class borders); an int8 model may lose at most
`max_int8_drop` mIoU points (default 2) against PyTorch on the true masks of the parity images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.deploy.export.onnx import export_traced, quiet_converters
from pixelforge.deploy.export.precision import check_calibration, refuse, write_fp16, write_int8
from pixelforge.deploy.runtime.segment import logits_to_mask, preprocess_image
from pixelforge.errors import PixelforgeError

MIN_AGREEMENT = 0.999
FP16_MIN_AGREEMENT = 0.99
OFFERS = ("fp16", "int8", "max_int8_drop", "calibration", "calibration_images")


def export_package(run_dir: str | Path, out: str | Path, data: str | None = None, parity_images: int = 32,
                   opset: int = 17, format: str | None = "onnx", fp16: bool = False, int8: bool = False,
                   max_int8_drop: float = 2.0, calibration: str = "minmax", calibration_images: int = 32,
                   **options) -> Path:
    """Export the run's best checkpoint to the package folder `out` (must not exist or be empty) and check it.

    Returns the package folder; its parity.json holds the check. Raises PixelforgeError when ONNX Runtime and
    PyTorch agree on fewer than 99.9% of the validation pixels, an fp16 model on fewer than 99%, or an int8 model
    loses more than `max_int8_drop` mIoU points (nothing is left at `out` then), or for options a segmentation
    package cannot honour (`format` other than onnx, classification's tolerances).

    Example:
        >>> package = export_package("runs/segment-shapes", "packages/seg", fp16=True)  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["fp16"]["pixel_agreement"]  # doctest: +SKIP
        0.9998
    """
    from pixelforge.tasks.segment.evaluate import load_segmentation_run, select_mask_samples

    reject_options("segment", options, format, OFFERS)
    check_calibration(calibration)
    out = Path(out)
    require_new_out(out)
    run = load_segmentation_run(run_dir)
    samples, split = select_mask_samples(run, data, "val" if data is None else None)
    samples = samples[:parity_images]
    size = run.img_size
    pre = {"task": "segment", "size": [size, size], "resize": "stretch-bilinear", "channels": run.in_channels,
           "bit_depth": run.bit_depth, "scale": "1/255 for 8-bit, 1/65535 for 16-bit",
           "mean": run.mean, "std": run.std, "layout": "NCHW", "output": "logits; resize to the image, argmax"}
    with staged_folder(out) as staging, quiet_converters():
        _write_onnx(run.model, staging / "model.onnx", run.in_channels, size, opset)
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "segment", "output_name": "logits", "num_classes": len(run.classes), "arch": run.model.arch,
            "backbone": run.model.backbone_name, "input_shape": [1, run.in_channels, size, size]}, opset)
        report = _parity(run, staging, pre, samples, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch agree on {100 * report['pixel_agreement']:.3f}% "
                                  f"of val pixels (need {100 * MIN_AGREEMENT:.1f}%); report the model and opset {opset}")
        if int8:
            train = select_mask_samples(run, None, "train")[0] if data is None else samples
            write_int8(staging, _calibration_batches(train[:calibration_images], pre), calibration,
                       min(len(train), calibration_images))
            report["int8"] = _int8_check(_parity(run, staging, pre, samples, split, "model.int8.onnx"), report,
                                         max_int8_drop, calibration)
            write_json(staging / "parity.json", report)
        if fp16:
            write_fp16(staging)
            report["fp16"] = checked = _parity(run, staging, pre, samples, split, "model.fp16.onnx", FP16_MIN_AGREEMENT)
            write_json(staging / "parity.json", report)
            if not checked["passed"]:
                refuse("fp16", f"{100 * checked['pixel_agreement']:.2f}% of val pixels agree with PyTorch, need "
                       f"{100 * FP16_MIN_AGREEMENT:g}%", "export without --fp16")
    return out


def _int8_check(checked: dict, fp32: dict, max_drop: float, calibration: str) -> dict:
    """`checked` (the int8 model's parity) with its mIoU drop against PyTorch's, refused above `max_drop` points."""
    drop = None if checked["miou"] is None else 100 * (checked["reference_miou"] - checked["miou"])
    checked = {**checked, "miou_drop_points": drop, "max_drop_points": max_drop,
               "passed": drop is None or drop <= max_drop}
    checked.pop("required_agreement")
    if not checked["passed"]:
        others = " or ".join(m for m in ("entropy", "percentile", "minmax") if m != calibration)
        refuse("int8", f"mIoU {100 * checked['miou']:.2f} vs PyTorch's {100 * checked['reference_miou']:.2f}, a drop of "
               f"{drop:.2f} points; allowed {max_drop:g} (--max-int8-drop)",
               f"try --calibration {others}, raise --max-int8-drop, or export without --int8")
    return checked


def _calibration_batches(samples, pre: dict):
    from pixelforge.data.images import ImageReadError
    from pixelforge.data.masks.images import load_image_any

    for sample in samples:
        try:
            yield preprocess_image(load_image_any(sample.image), pre)
        except ImageReadError:
            continue


def _write_onnx(model, path: Path, channels: int, size: int, opset: int) -> None:
    import torch

    model = model.eval().to(memory_format=torch.contiguous_format)  # the input size is fixed: no dynamic axes
    export_traced(model, (torch.zeros(1, channels, size, size),), path, ["image"], ["logits"], opset)


def _parity(run, package: Path, pre: dict, samples, split: str, model_file: str = "model.onnx",
            required: float | None = None) -> dict:
    """The package's `model_file` against PyTorch on `samples`: pixel agreement, max |Δlogit|, and each side's
    mIoU against the true masks (None when no mask matches its image's size)."""
    import onnxruntime as ort
    import torch

    from pixelforge.data.masks.images import load_image_any, load_mask
    from pixelforge.metrics.segmentation import ConfusionMatrix

    session = ort.InferenceSession(str(package / model_file), providers=["CPUExecutionProvider"])
    same = total = 0
    max_diff = 0.0
    scores = [ConfusionMatrix(len(run.classes), run.ignore_index) for _ in range(2)]
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
        truth = load_mask(sample.mask)
        if truth.shape == a.shape:
            for matrix, pred in zip(scores, (a, b)):
                matrix.update(torch.from_numpy(pred), torch.from_numpy(truth))
    agreement = same / max(total, 1)
    required = MIN_AGREEMENT if required is None else required
    reference, miou = (matrix.compute()["miou"] for matrix in scores)
    return {"split": split, "images": len(samples), "pixels": total, "pixel_agreement": agreement,
            "max_abs_logit_diff": max_diff, "reference_miou": reference, "miou": miou,
            "required_agreement": required, "passed": agreement >= required}
