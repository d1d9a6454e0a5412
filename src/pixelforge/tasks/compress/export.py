"""Exporting a compression run to a torch-free package (`pixelforge export RUN --out PACKAGE`).

The transforms become ONNX files with dynamic height and width; the entropy coder stays CompressAI's rANS with the
run's frozen CDF tables (codec.npz, copied), which the package runtime (deploy/runtime/compress.py) loads without
torch. The parity check codes the run's validation images both ways: the run (PyTorch) writes a file, the
package (ONNX Runtime) must decode it to the same symbols (the file's symbol CRC) and to pixels within 1 grey
level of the run's own decode; the export is refused otherwise.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from pixelforge.deploy.export.folder import reject_options, require_new_out, staged_folder, write_dense_package_files, \
    write_json
from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.runtime.compress import CompressionRuntime
from pixelforge.deploy.runtime.learned_codec import MULTIPLE, compress_pixels, decompress_bytes
from pixelforge.deploy.runtime.pfc import PfcError
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.compress.tables import CODEC_FILE, load_trained, torch_transforms
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.compress.card import card_facts

MAX_PIXEL_DIFF = 1  # ONNX Runtime's and PyTorch's convolutions round differently; one grey level at most


class AbsThen(torch.nn.Module):
    """ScaleHyperprior's hyper analysis takes |y|: the ONNX file does it too, so its input is y."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, y):
        return self.module(torch.abs(y))


def export_package(run_dir, out, data: str | None = None, parity_images: int = 4, opset: int = 17,
                   format: str | None = "onnx", **options) -> Path:
    """Write the package to `out` (new or empty) after the parity check; returns `out`."""
    reject_options("compress", options, format, why=(
        "its packages are fp32 ONNX only, by design: the entropy coder needs the latents bit-exact on every machine, "
        "which fp16 or int8 arithmetic would break"))
    parity_images = min(parity_images, 8)  # each image is coded four ways; a few suffice for a conversion check
    out = Path(out)
    require_new_out(out)
    run, cfg, model, codec = load_trained(run_dir)
    step = MULTIPLE[cfg.model]
    parts = {"g_a": (model.g_a, 3), "g_s": (model.g_s, cfg.channels_m)}
    if cfg.model == "hyperprior":
        parts.update(h_a=(AbsThen(model.h_a), cfg.channels_m), h_s=(model.h_s, cfg.channels_n))
    with staged_folder(out) as staging:
        for name, (module, channels) in parts.items():
            size = {"g_a": step * 2, "h_a": step // 8, "g_s": step // 8, "h_s": step // 32}[name]
            export_traced(module.eval(), (torch.rand(1, channels, size, size + step // 16),), staging / f"{name}.onnx",
                          ["x"], ["y"], opset, {"x": {2: "height", 3: "width"}, "y": {2: "height", 3: "width"}})
        (staging / CODEC_FILE).write_bytes((run / CODEC_FILE).read_bytes())
        pre = {"task": "compress", "multiple": step, "padding": "edge, bottom and right", "scale": "1/255",
               "layout": "NCHW", "range": "decoded pixels clipped to [0, 1], x255, rounded"}
        write_dense_package_files(staging, run, pre, [], {
            "task": "compress", "models": {name: f"{name}.onnx" for name in parts}, "input_name": "x",
            "output_name": "y", "model": cfg.model, "model_id": codec.model_id.hex(), "lambda": cfg.lambda_,
            "channels": [cfg.channels_n, cfg.channels_m]}, opset,
            write_card=lambda path: write_task_card(run, card_facts, dest=path))
        report = parity(model, codec, CompressionRuntime(staging), parity_pixels(run, cfg, data, parity_images))
        write_json(staging / "parity.json", report)
        if report["symbol_mismatches"]:
            raise PixelforgeError(f"export refused: {report['symbol_mismatches']} of {report['images']} parity images "
                                  f"decode to other symbols between the package and the run (ONNX Runtime's "
                                  f"hyper-synthesis put a scale in another table entry than PyTorch's, so one "
                                  f"could not decode the other's files); report the model and opset")
        if not report["passed"]:
            raise PixelforgeError(f"export refused: the package decodes the run's files {report['max_pixel_diff']} "
                                  f"grey levels away from the run (allowed {MAX_PIXEL_DIFF}); report the model and opset")
    return out


def parity_pixels(run: Path, cfg, data: str | None, count: int) -> list[np.ndarray]:
    """Up to `count` validation images of the run (or of `data`), cut to at most 256 x 256 to keep export quick."""
    from pixelforge.data.images import list_images, load_rgb, read_each
    from pixelforge.tasks.compress.data import split_images

    files = list_images(Path(data)) if data else split_images(cfg.data, cfg.val_fraction, cfg.seed)["val"]
    decoded = read_each(files, load_rgb, [])  # a broken file (training skipped it too) is passed over
    return [np.asarray(image)[:256, :256] for _, image in itertools.islice(decoded, count)]


def parity(model, codec, runtime: CompressionRuntime, images: list[np.ndarray]) -> dict:
    """Run-written files decoded by the package (and package-written files by the run): same symbols, pixels."""
    transforms = torch_transforms(model)
    max_diff, same_files, mismatches = 0, 0, 0
    for pixels in images:
        data = compress_pixels(pixels, codec, transforms)
        ours = decompress_bytes(data, codec, transforms)
        their_file = runtime.compress(pixels)  # encoded once: checked both ways and compared byte for byte
        try:  # each side raises if its symbols differ from the other's encoder (symbol CRC)
            theirs = runtime.decompress(data)
            back = decompress_bytes(their_file, codec, transforms)  # the other way round
        except PfcError:  # counted and reported by the export, not raised as a bare "file: ..." error
            mismatches += 1
            continue
        max_diff = max(max_diff, int(np.abs(ours.astype(int) - theirs.astype(int)).max()),
                       int(np.abs(back.astype(int) - runtime.decompress(their_file).astype(int)).max()))
        same_files += int(their_file == data)
    return {"images": len(images), "identical_files": same_files, "symbol_mismatches": mismatches,
            "max_pixel_diff": max_diff, "allowed_pixel_diff": MAX_PIXEL_DIFF,
            "passed": max_diff <= MAX_PIXEL_DIFF and not mismatches and len(images) > 0}
