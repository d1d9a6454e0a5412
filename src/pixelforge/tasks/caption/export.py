"""Exporting a captioning run: the encoder (with the decoder's initial state) and ONE decoder step to ONNX; beam
search runs in numpy in the torch-free runtime (deploy/runtime/caption.py).

    PACKAGE/encoder.onnx, decoder_step.onnx, tokenizer.json, preprocess.json, classes.json ([]), package.json,
    parity.json, model_card.md (the run's, or one written from the run)
            encoder.fp16.onnx, decoder_step.fp16.onnx   with --fp16: both in fp16, inputs and outputs float32
            encoder.int8.onnx, decoder_step.int8.onnx   with --int8 (then the default precision): the CNN encoder
                              static QDQ int8 calibrated on training images, the decoder step dynamic int8 (its
                              matrix products and word embedding), as ONNX Runtime recommends for each kind

package.json lists the encoders under "models" and the decoder steps under "decoder_models", by precision.

Parity: the package must give exactly the same captions as PyTorch (same beam search, deploy/runtime/
caption_search.py) on the run's validation images (up to `parity_images`); otherwise the export is refused and
nothing is left at `out`. An fp16 or int8 pair is judged in captioning's own terms, against PyTorch's captions as
the references: corpus BLEU-4 at least `MIN_BLEU` (90 of 100).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelforge.deploy.export.folder import reject_options, require_new_out, staged_folder, write_dense_package_files, write_json
from pixelforge.deploy.export.onnx import export_traced
from pixelforge.deploy.export.precision import check_calibration, other_calibration, refuse, write_encoder_pair
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


# BLEU-4 (0-100) of a lower precision's captions with PyTorch's as references: 100 is every caption identical; one
# word changed in one of ten 6-word captions still scores about 90, a second changed caption less.
MIN_BLEU = 90.0
OFFERS = ("fp16", "int8", "calibration", "calibration_images")


def export_package(run_dir, out, data: str | None = None, parity_images: int = 32, opset: int = 17,
                   format: str | None = "onnx", fp16: bool = False, int8: bool = False, calibration: str = "minmax",
                   calibration_images: int = 32, **options) -> Path:
    """Write the package to `out` (new or empty) after the parity check; returns `out`."""
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.caption_search import caption_input
    from pixelforge.tasks.caption.evaluate import _select
    from pixelforge.tasks.caption.inference import load_caption_run

    reject_options("caption", options, format, OFFERS)
    check_calibration(calibration)
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
            "decoder_models": {"fp32": "decoder_step.onnx"},
            "backbone": cfg.model, "beam": cfg.beam, "length_penalty": cfg.length_penalty,
            "max_len": cfg.max_caption_words + 1, "vocab_size": len(run.tokenizer)}, opset,
            write_card=lambda path: write_task_card(run.run_dir, card_facts, dest=path))
        expected = _torch_captions(run, images)
        report = _parity(run, staging, images, split, expected)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch give different captions for "
                                  f"{report['images'] - report['same_captions']} of {report['images']} {split} images "
                                  f"(first: {report['first_difference']}); report the model and opset {opset}")
        if int8:
            train = _select(run, None, "train")[0] if data is None else images
            batches = [caption_input(load_rgb(i.path), size, run.mean, run.std) for i in train[:calibration_images]]
            write_encoder_pair(staging, "int8", "encoder.onnx", "decoder_step.onnx", "decoder_models", batches,
                               calibration)
            report["int8"] = _check_bleu("int8", _parity(run, staging, images, split, expected, "int8"),
                                         f"try --calibration {other_calibration(calibration)}, or export without --int8")
            write_json(staging / "parity.json", report)
        if fp16:
            write_encoder_pair(staging, "fp16", "encoder.onnx", "decoder_step.onnx", "decoder_models")
            report["fp16"] = _check_bleu("fp16", _parity(run, staging, images, split, expected, "fp16"),
                                         "export without --fp16")
            write_json(staging / "parity.json", report)
    return out


def _torch_captions(run, images) -> list:
    """PyTorch's decoded hypothesis for each image (the parity references)."""
    from pixelforge.data.images import load_rgb

    return [run.decode(load_rgb(image.path)) for image in images]


def _check_bleu(precision: str, report: dict, fix: str) -> dict:
    """A lower precision's caption `report` judged: refused when its BLEU-4 against PyTorch's is under MIN_BLEU."""
    report = {**report, "required_bleu4_vs_torch": MIN_BLEU, "passed": report["bleu4_vs_torch"] >= MIN_BLEU}
    if not report["passed"]:
        refuse(precision, f"BLEU-4 against PyTorch's captions {report['bleu4_vs_torch']:.1f}, need {MIN_BLEU:g}; "
               f"{report['images'] - report['same_captions']} of {report['images']} captions differ, first "
               f"{report['first_difference']}", fix)
    return report


def _parity(run, package: Path, images, split: str, expected: list, precision: str = "fp32") -> dict:
    """The package's `precision` against PyTorch's hypotheses `expected`: identical captions, the attention's max
    |delta| over those, and BLEU-4 with PyTorch's captions as the references."""
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.caption import CaptionRuntime
    from pixelforge.metrics.captions import corpus_bleu

    runtime = CaptionRuntime(package, precision)
    same, first, max_diff, captions = 0, None, 0.0, []
    for image, hyp in zip(images, expected):
        got = runtime.caption(load_rgb(image.path))
        captions.append(got["caption"])
        words = " ".join(run.words(hyp))
        if words == got["caption"]:
            same += 1
            steps = min(len(hyp.alphas), len(got["alphas"]))
            if steps:
                max_diff = max(max_diff, max(float(np.abs(a - b).max()) for a, b in zip(hyp.alphas, got["alphas"])))
        elif first is None:
            first = f"{Path(image.path).name}: {words!r} vs {got['caption']!r}"
    references = [[" ".join(run.words(hyp))] for hyp in expected]
    bleu = corpus_bleu(captions, references)["bleu4"] if images else 1.0
    return {"split": split, "images": len(images), "same_captions": same, "bleu4_vs_torch": bleu,
            "beam": run.config.beam, "max_abs_attention_diff": max_diff, "first_difference": first,
            "passed": same == len(images)}
