"""Exporting a style run to an ONNX package (`pixelforge export RUN` for `--task style` runs).

    PACKAGE/model.onnx        input "image" [1, 3, H, W] in [0, 1] (H, W dynamic, multiples of 4), output
                              "stylized" [1, 3, H, W] in [0, 1]
            preprocess.json   the input's contract and `max_side` (larger images are shrunk first)
            package.json      "task": "style", the loss network (and its feature transform) and style the run
                              was trained with
            style.png         the style image it learnt (longer side <= 512 px), so its losses can be measured
            model.fp16.onnx   with --fp16: the same model in fp16, inputs and outputs float32
            model.int8.onnx   with --int8: static QDQ int8 calibrated on training photos (the default precision)
            parity.json       ONNX Runtime vs PyTorch on validation photos at two sizes: max |Δpixel| (0-1 scale),
                              worst PSNR against PyTorch's output; the same for fp16 and int8

The export is refused unless every output pixel agrees within 2/255 (a grey level) at both sizes, an fp16 model
unless its output is within 40 dB PSNR of PyTorch's on every photo (`precision.FP16_MIN_PSNR`), an int8 model unless
within 30 dB (`precision.INT8_MIN_PSNR`). Measured on the default network (width 16, 5 residual blocks, a 256 px
photo, ONNX Runtime 1.32 on 2 CPU cores): int8 runs in 0.64x fp32's time and is 0.30x its size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.deploy.export.folder import reject_options, require_new_out, staged_folder, write_dense_package_files, write_json
from pixelforge.deploy.export.onnx import export_traced, quiet_converters
from pixelforge.deploy.export.precision import (check_calibration, check_fp16_psnr, check_int8_psnr, psnr_db, write_fp16,
                                               write_int8)
from pixelforge.deploy.runtime.style import MAX_SIDE
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.style.card import card_facts

TOLERANCE = 2 / 255


def export_package(run_dir: str | Path, out: str | Path, opset: int = 17, format: str | None = "onnx",
                   max_side: int = MAX_SIDE, parity_images: int = 4, fp16: bool = False, int8: bool = False,
                   calibration: str = "minmax", calibration_images: int = 16, **options) -> Path:
    """Export the run's best transformer to the package folder `out` and check it against PyTorch.

    Example:
        >>> package = export_package("runs/style", "packages/style")  # doctest: +SKIP
        >>> json.loads((package / "parity.json").read_text())["passed"]  # doctest: +SKIP
        True
    """
    import torch

    from pixelforge.tasks.style.apply import load_style_run, style_image_of

    reject_options("style", options, format, ("fp16", "int8", "calibration", "calibration_images"))
    check_calibration(calibration)
    out = Path(out)
    require_new_out(out)
    run = load_style_run(run_dir)
    cfg = run.config
    pre = {"task": "style", "layout": "NCHW", "range": "RGB in [0, 1]", "multiple_of": 4, "pad": "reflect",
           "max_side": max_side, "output": "stylized RGB in [0, 1], same size"}
    with staged_folder(out) as staging, quiet_converters():
        example = torch.rand(1, 3, cfg.img_size, cfg.img_size)
        export_traced(run.model.eval(), (example,), staging / "model.onnx", ["image"], ["stylized"], opset,
                      dynamic_axes={"image": {2: "height", 3: "width"}, "stylized": {2: "height", 3: "width"}})
        write_dense_package_files(staging, run.run_dir, pre, [], {
            "task": "style", "output_name": "stylized", "arch": f"johnson-w{cfg.width}-r{cfg.residual_blocks}"
                    + (f"-n{run.model.noise_channels}" if run.model.noise_channels else ""),
            "backbone": None, "style": Path(cfg.style).name, "loss_net": cfg.loss_net,
            "feature_transform": cfg.feature_transform,
            "input_shape": [1, 3, "height", "width"]}, opset,
            write_card=lambda path: write_task_card(run.run_dir, card_facts, dest=path))
        _write_style_image(style_image_of(run), staging / "style.png")
        report = _parity(run, staging / "model.onnx", parity_images)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch differ by {report['max_abs_diff']:.4f} "
                                  f"(allowed {TOLERANCE:.4f}); report the model and opset {opset}")
        if int8:
            photos = _calibration_photos(run, calibration_images)
            write_int8(staging, photos, calibration, len(photos), what="training photos")
            report["int8"] = check_int8_psnr(_parity(run, staging / "model.int8.onnx", parity_images), calibration)
            write_json(staging / "parity.json", report)
        if fp16:
            write_fp16(staging)
            report["fp16"] = check_fp16_psnr(_parity(run, staging / "model.fp16.onnx", parity_images))
            write_json(staging / "parity.json", report)
    return out


def _write_style_image(style: str | Path | None, out: Path) -> None:
    """The package's copy of the style (what `stylize PACKAGE` measures the style loss against), read as training
    read it: `convert("RGB")` made a 16-bit style white, a transparent one black around it, a phone's photo sideways.
    `style`: the style file, or the run's copy of it when the file has been moved (None: neither)."""
    from pixelforge.tasks.style.report import write_style_thumbnail

    if style is not None and Path(style).is_file():
        write_style_thumbnail(Path(style), out)  # the run's own copy is made the same way


def _calibration_photos(run, count: int) -> list:
    """Up to `count` training photos as the runtime feeds them ([1, 3, S, S] in [0, 1], at the training size)."""
    from pixelforge.tasks.style.task import ContentImages, content_split

    source = content_split(run.config)
    photos = ContentImages(source["train"][:count], run.img_size, train=False)
    return [photos[i][None].numpy() for i in range(len(photos))]


def _parity(run, model_path: Path, count: int) -> dict:
    """The largest pixel difference over validation photos at the training size and at 1.5x (dynamic axes)."""
    import onnxruntime as ort
    import torch

    from pixelforge.tasks.style.task import ContentImages, content_split

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    source = content_split(run.config)
    sizes = [run.img_size, run.img_size * 3 // 2 // 4 * 4]
    max_diff, checked, worst_psnr = 0.0, 0, 100.0
    for size in sizes:
        images = ContentImages(source["val"][:count], size, train=False)
        for i in range(len(images)):
            x = images[i][None]
            with torch.inference_mode():
                expected = run.model(x).numpy()
            got = session.run(["stylized"], {"image": x.numpy()})[0]
            max_diff, checked = max(max_diff, float(np.abs(expected - got).max())), checked + 1
            worst_psnr = min(worst_psnr, psnr_db(np.clip(expected, 0, 1), np.clip(got, 0, 1)))
    return {"images": checked, "sizes": sizes, "max_abs_diff": max_diff, "min_psnr_vs_torch": worst_psnr,
            "tolerance": TOLERANCE,
            "passed": checked > 0 and max_diff <= TOLERANCE}
