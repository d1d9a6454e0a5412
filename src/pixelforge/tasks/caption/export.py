"""Exporting a captioning run: the encoder (with the decoder's initial state) and ONE decoder step to ONNX; beam
search runs in numpy in the torch-free runtime (deploy/runtime/caption.py).

    PACKAGE/encoder.onnx, decoder_step.onnx, tokenizer.json, preprocess.json, classes.json ([]), package.json,
    parity.json, model_card.md (the run's, or one written from the run)

Parity: the package must give exactly the same captions as PyTorch (same beam search, deploy/runtime/
caption_search.py) on the run's validation images (up to `parity_images`); otherwise the export is refused and
nothing is left at `out`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelforge.deploy.export.folder import reject_options, require_new_out, staged_folder, write_dense_package_files, write_json
from pixelforge.deploy.export.onnx import export_traced
from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.card import write_task_card
from pixelforge.tasks.caption.card import card_facts


class _EncoderInit(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.decoder.init_state(self.model.encoder(image))


class _DecoderStep(nn.Module):
    def __init__(self, decoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, features, projected, words, h, c):
        return self.decoder.step(features, projected, words, h, c)


def export_package(run_dir, out, data: str | None = None, parity_images: int = 32, opset: int = 17,
                   format: str | None = "onnx", **options) -> Path:
    """Write the package to `out` (new or empty) after the parity check; returns `out`."""
    from pixelforge.tasks.caption.evaluate import _select
    from pixelforge.tasks.caption.inference import load_caption_run

    reject_options("caption", options, format, why=(
        "its packages are fp32 ONNX only: the image encoder and the word-by-word decoder are not converted or checked "
        "in lower precision"))
    out = Path(out)
    require_new_out(out)
    run = load_caption_run(run_dir)
    images, split = _select(run, data, "val" if data is None else None)
    images = images[:parity_images]
    cfg, size = run.config, run.config.img_size
    model = run.model.eval().to(memory_format=torch.contiguous_format)
    with staged_folder(out) as staging:
        with torch.no_grad():
            state = model.decoder.init_state(model.encoder(torch.zeros(1, 3, size, size)))
        # The wrappers in eval mode: the exporter puts a module's train/eval mode back afterwards, and a fresh
        # wrapper is in train mode, which would leave the model's dropout and batch norm training for the parity run.
        export_traced(_EncoderInit(model).eval(), (torch.zeros(1, 3, size, size),), staging / "encoder.onnx", ["image"],
                      ["features", "projected", "h", "c"], opset)
        beams = 2  # traced with 2 beams; the beam axis is dynamic
        step_args = (*(t.repeat(beams, *[1] * (t.ndim - 1)) for t in state[:2]),
                     torch.zeros(beams, dtype=torch.long), *(t.repeat(beams, 1) for t in state[2:]))
        dynamic = {name: {0: "beams"} for name in ("features", "projected", "words", "h", "c", "logits", "h_out",
                                                   "c_out", "alpha")}
        export_traced(_DecoderStep(model.decoder).eval(), step_args, staging / "decoder_step.onnx",
                      ["features", "projected", "words", "h", "c"], ["logits", "h_out", "c_out", "alpha"], opset,
                      dynamic_axes=dynamic)
        run.tokenizer.save(staging / "tokenizer.json")
        pre = {"task": "caption", "size": size, "resize": "stretch-bilinear", "mean": run.mean, "std": run.std,
               "scale": "1/255", "layout": "NCHW"}
        write_dense_package_files(staging, run.run_dir, pre, [], {
            "task": "caption", "models": {"fp32": "encoder.onnx"}, "decoder_model": "decoder_step.onnx",
            "backbone": cfg.model, "beam": cfg.beam, "length_penalty": cfg.length_penalty,
            "max_len": cfg.max_caption_words + 1, "vocab_size": len(run.tokenizer)}, opset,
            write_card=lambda path: write_task_card(run.run_dir, card_facts, dest=path))
        report = _parity(run, staging, images, split)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch give different captions for "
                                  f"{report['images'] - report['same_captions']} of {report['images']} {split} images "
                                  f"(first: {report['first_difference']}); report the model and opset {opset}")
    return out


def _parity(run, package: Path, images, split: str) -> dict:
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.caption import CaptionRuntime

    runtime = CaptionRuntime(package)
    same, first, max_diff = 0, None, 0.0
    for image in images:
        pixels = load_rgb(image.path)
        expected = run.decode(pixels)
        got = runtime.caption(pixels)
        words = " ".join(run.words(expected))
        if words == got["caption"]:
            same += 1
            steps = min(len(expected.alphas), len(got["alphas"]))
            if steps:
                max_diff = max(max_diff, max(float(np.abs(a - b).max()) for a, b in zip(expected.alphas, got["alphas"])))
        elif first is None:
            first = f"{Path(image.path).name}: {words!r} vs {got['caption']!r}"
    return {"split": split, "images": len(images), "same_captions": same, "beam": run.config.beam,
            "max_abs_attention_diff": max_diff, "first_difference": first, "passed": same == len(images)}
