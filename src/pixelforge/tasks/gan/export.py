"""Exporting a GAN run's EMA generator to an ONNX package (`pixelforge export RUN` for `--task gan` runs).

    PACKAGE/model.onnx        inputs z float32 [N, latent_dim] (+ labels int64 [N] if conditional), dynamic N;
                              output image float32 [N, C, S, S] in [-1, 1]
            preprocess.json   latent_dim, img_size, channels, conditional, how the noise is drawn
            classes.json      class names (label index = position)
            package.json      "task": "gan", input/output names
            model.fp16.onnx   with --fp16: the generator in fp16, inputs and outputs as above
            model.int8.onnx   with --int8: static QDQ int8 calibrated on the runtime's noise (the default precision)
            parity.json       ONNX Runtime vs PyTorch on the runtime's own noise: max |Δ|, uint8 agreement, worst
                              PSNR against PyTorch's images; the same for fp16 and int8

The export is refused unless every uint8 pixel of ONNX Runtime's images is within one level of PyTorch's, an fp16
generator unless each of its images is within 40 dB PSNR of PyTorch's (`precision.FP16_MIN_PSNR`), an int8 one
unless within 30 dB (`precision.INT8_MIN_PSNR`). Measured on the default generator (latent 128, width 16, 64 px,
batch 64, ONNX Runtime 1.32 on 2 CPU cores): int8 is 0.26x fp32's size and about as fast (1.03x its time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelforge.deploy.export.folder import (reject_options, require_new_out, staged_folder, write_dense_package_files,
                                            write_json)
from pixelforge.deploy.export.precision import (check_calibration, check_fp16_psnr, check_int8_psnr, psnr_db, write_fp16,
                                               write_int8)
from pixelforge.deploy.runtime.gan import sample_noise
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.gan.card import card_facts

PARITY_IMAGES = 64  # generated images compared (at most; `--parity-images` may lower it)
MAX_LEVELS = 1  # uint8 levels ONNX Runtime's pixels may differ from PyTorch's


class _Conditional(nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, z, labels):
        return self.generator(z, labels)


class _Unconditional(_Conditional):
    def forward(self, z):
        return self.generator(z)


def export_package(run_dir, out, opset: int = 17, format: str | None = "onnx", data=None,
                   parity_images: int = PARITY_IMAGES, fp16: bool = False, int8: bool = False,
                   calibration: str = "minmax", calibration_images: int = 256, **options) -> Path:
    """Export the run's EMA generator to `out` (must not exist or be empty) and check it against PyTorch.

    Example:
        >>> export_package("runs/gan-cond-digits", "packages/digits-gan")  # doctest: +SKIP
    """
    from pixelforge.deploy.export.onnx import export_traced, quiet_converters
    from pixelforge.tasks.gan.run import load_gan_run

    reject_options("gan", {**options, "data": data}, format, ("fp16", "int8", "calibration", "calibration_images"))
    check_calibration(calibration)
    out = Path(out)
    require_new_out(out)
    run = load_gan_run(run_dir)
    wrapper = (_Conditional if run.conditional else _Unconditional)(run.generator).eval()
    inputs = ["z", "labels"] if run.conditional else ["z"]
    example = (torch.zeros(2, run.latent_dim), torch.zeros(2, dtype=torch.long))[:len(inputs)]
    size = run.config.img_size
    pre = {"task": "gan", "latent_dim": run.latent_dim, "img_size": size, "channels": run.channels,
           "conditional": run.conditional, "noise": "numpy default_rng(seed).standard_normal float32",
           "output": "image in [-1, 1]: uint8 = round((x + 1) * 127.5)"}
    with staged_folder(out) as staging, quiet_converters():
        export_traced(wrapper, example, staging / "model.onnx", inputs, ["image"], opset,
                      dynamic_axes={**{name: {0: "batch"} for name in inputs}, "image": {0: "batch"}})
        write_dense_package_files(staging, run.run_dir, pre, run.classes, {
            "task": "gan", "input_name": "z", "label_input": "labels" if run.conditional else None,
            "output_name": "image", "arch": "dcgan", "input_shape": [None, run.latent_dim],
            "output_shape": [None, run.channels, size, size]}, opset,
            write_card=lambda path: write_task_card(run.run_dir, card_facts, dest=path))
        report = _parity(wrapper, staging / "model.onnx", run, min(parity_images, PARITY_IMAGES))
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime's images differ from PyTorch's by up to "
                                  f"{report['max_uint8_diff']} levels (allowed {MAX_LEVELS}); report opset {opset}")
        if int8:
            write_int8(staging, _calibration_noise(run, calibration_images), calibration, calibration_images,
                       what="noise samples")
            int8_report = _parity(wrapper, staging / "model.int8.onnx", run, min(parity_images, PARITY_IMAGES))
            report["int8"] = check_int8_psnr(int8_report, calibration)
            write_json(staging / "parity.json", report)
        if fp16:
            write_fp16(staging)
            fp16_report = _parity(wrapper, staging / "model.fp16.onnx", run, min(parity_images, PARITY_IMAGES))
            report["fp16"] = check_fp16_psnr(fp16_report)
            write_json(staging / "parity.json", report)
    return out


def _feed(run, count: int, seed: int) -> dict:
    """The runtime's noise for `count` images (and labels cycling through the classes, if conditional)."""
    feed = {"z": sample_noise(count, run.latent_dim, seed=seed)}
    if run.conditional:
        feed["labels"] = np.arange(count, dtype=np.int64) % len(run.classes)
    return feed


def _calibration_noise(run, count: int, batch: int = 32) -> list[dict]:
    """`count` samples of the runtime's noise in batches, seeded apart from the parity check's (seed 0)."""
    return [_feed(run, min(batch, count - start), seed=1 + start // batch) for start in range(0, count, batch)]


def _parity(wrapper, model_path: Path, run, count: int) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feed = _feed(run, count, seed=0)
    args = [torch.from_numpy(value) for value in feed.values()]
    with torch.inference_mode():
        expected = wrapper(*args).numpy()
    got = session.run(["image"], feed)[0]
    as_uint8 = lambda x: np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.int16)  # noqa: E731
    levels = int(np.abs(as_uint8(expected) - as_uint8(got)).max())
    worst = min((psnr_db(np.clip(a, -1, 1), np.clip(b, -1, 1), peak=2.0) for a, b in zip(expected, got)), default=100.0)
    return {"images": count, "max_abs_diff": float(np.abs(expected - got).max()), "max_uint8_diff": levels,
            "min_psnr_vs_torch": worst,
            "allowed_uint8_diff": MAX_LEVELS, "passed": levels <= MAX_LEVELS}
