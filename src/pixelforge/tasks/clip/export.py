"""Exporting a CLIP run: the image and the text tower to ONNX, each ending in its normalised embedding, for the
torch-free runtime (deploy/runtime/clip.py).

    PACKAGE/image_encoder.onnx, text_encoder.onnx, tokenizer.json, preprocess.json, classes.json ([]),
    package.json, parity.json, model_card.md (the run's, or one written from the run)
            image_encoder.fp16.onnx, text_encoder.fp16.onnx   with --fp16: both in fp16, inputs and outputs as fp32's
            image_encoder.int8.onnx, text_encoder.int8.onnx   with --int8 (then the default precision): the image
                              tower static QDQ int8 calibrated on training images, the text transformer dynamic int8
                              (its matrix products and token embedding), as ONNX Runtime recommends for each kind

package.json lists the image encoders under "models" and the text encoders under "text_models", by precision.

Parity: on the run's validation images (up to `parity_images`) the package must give the same zero-shot label as
PyTorch for every image, with the validation set's colour-shape names (or its first captions, on data without
them), and embeddings within 1e-4; otherwise the export is refused and nothing is left at `out`. An fp16 or int8
pair is judged in zero-shot terms: the label PyTorch gives for at least `MIN_AGREEMENT` (95 %) of the images, and
every image and label embedding at cosine similarity >= `MIN_COSINE` (0.99) to PyTorch's.
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
from pixelforge.tasks.clip.card import card_facts


class _ImageTower(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model.encode_image(image, normalize=True)


class _TextTower(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens):
        return self.model.encode_text(tokens, normalize=True)


MIN_AGREEMENT = 0.95  # share of the images a lower precision must label as PyTorch does (a near tie may flip)
MIN_COSINE = 0.99  # cosine similarity of each of its image and label embeddings to PyTorch's
OFFERS = ("fp16", "int8", "calibration", "calibration_images")


def export_package(run_dir, out, data: str | None = None, parity_images: int = 32, opset: int = 17,
                   format: str | None = "onnx", fp16: bool = False, int8: bool = False, calibration: str = "minmax",
                   calibration_images: int = 32, **options) -> Path:
    """Write the package to `out` (new or empty) after the parity check; returns `out`."""
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.clip import clip_input
    from pixelforge.runs import folder as rd
    from pixelforge.tasks.clip.evaluate import _source
    from pixelforge.tasks.clip.run import load_clip_run

    reject_options("clip", options, format, OFFERS)
    check_calibration(calibration)
    out = Path(out)
    require_new_out(out)
    checkpoint = rd.trained_checkpoint(rd.require_run(run_dir))  # last.ckpt, with a warning, before a first epoch ended
    zs, cfg = load_clip_run(run_dir, checkpoint.name)
    state = rd.load_checkpoint(checkpoint)
    source = _source(cfg, data)
    images = source.split("val")[:parity_images] or source.images[:parity_images]
    model, size = zs.model.eval(), cfg.img_size
    length = state["model_cfg"]["text_cfg"]["context_length"]
    with staged_folder(out) as staging:
        # Wrappers in eval mode: the exporter restores a module's mode afterwards (caption/export.py says why).
        export_traced(_ImageTower(model).eval(), (torch.zeros(2, 3, size, size),), staging / "image_encoder.onnx",
                      ["image"], ["embedding"], opset, dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}})
        tokens = zs.tokenize(["a", "a b"])
        export_traced(_TextTower(model).eval(), (tokens,), staging / "text_encoder.onnx", ["tokens"], ["embedding"],
                      opset, dynamic_axes={"tokens": {0: "texts"}, "embedding": {0: "texts"}})
        from pixelforge.data.captions.tokenizer import Tokenizer

        Tokenizer(state["vocab"], state.get("min_count", 1)).save(staging / "tokenizer.json")
        pre = {"task": "clip", "size": size, "resize": "short-side-bicubic-center-crop", "mean": state["mean"],
               "std": state["std"], "scale": "1/255", "layout": "NCHW"}
        write_dense_package_files(staging, Path(run_dir), pre, [], {
            "task": "clip", "models": {"fp32": "image_encoder.onnx"}, "text_model": "text_encoder.onnx",
            "text_models": {"fp32": "text_encoder.onnx"},
            "backbone": cfg.model, "templates": list(zs.templates), "context_length": length,
            "logit_scale": float(model.logit_scale.detach().exp())}, opset,
            write_card=lambda path: write_task_card(Path(run_dir), card_facts, dest=path))
        report = _parity(zs, staging, images)
        write_json(staging / "parity.json", report)
        if not report["passed"]:
            raise PixelforgeError(f"export refused: ONNX Runtime and PyTorch disagree on {report['images']} "
                                  f"validation images (labels differ for {report['different_labels']}, max |Δ "
                                  f"embedding| {report['max_abs_embedding_diff']:.2e}); report the model and opset {opset}")
        if int8:
            train = (source.split("train") or source.images)[:calibration_images]
            batches = [clip_input(load_rgb(i.path), size, state["mean"], state["std"]) for i in train]
            write_encoder_pair(staging, "int8", "image_encoder.onnx", "text_encoder.onnx", "text_models", batches,
                               calibration)
            report["int8"] = _check_lower(_parity(zs, staging, images, "int8"), "int8",
                                          f"try --calibration {other_calibration(calibration)}, or export without "
                                          "--int8")
            write_json(staging / "parity.json", report)
        if fp16:
            write_encoder_pair(staging, "fp16", "image_encoder.onnx", "text_encoder.onnx", "text_models")
            report["fp16"] = _check_lower(_parity(zs, staging, images, "fp16"), "fp16", "export without --fp16")
            write_json(staging / "parity.json", report)
    return out


def _check_lower(report: dict, precision: str, fix: str) -> dict:
    """A lower precision's `report` judged in zero-shot terms (MIN_AGREEMENT, MIN_COSINE); refused otherwise."""
    agreement = 1 - report["different_labels"] / max(report["images"], 1)
    cosine = min(report["min_image_cosine"], report["min_label_cosine"])
    report = {**report, "label_agreement": agreement, "required_agreement": MIN_AGREEMENT,
              "required_cosine": MIN_COSINE, "passed": agreement >= MIN_AGREEMENT and cosine >= MIN_COSINE}
    if not report["passed"]:
        refuse(precision, f"zero-shot labels agree with PyTorch's on {100 * agreement:.1f} % of {report['images']} "
               f"images, embeddings' cosine similarity down to {cosine:.4f}; need {100 * MIN_AGREEMENT:g} % and "
               f"{MIN_COSINE:g}", fix)
    return report


def _parity(zs, package: Path, images, precision: str = "fp32") -> dict:
    from pixelforge.data.images import load_rgb
    from pixelforge.deploy.runtime.clip import ClipRuntime
    from pixelforge.tasks.clip.evaluate import _label

    runtime = ClipRuntime(package, precision)
    pixels = [load_rgb(i.path) for i in images]
    labels = sorted({_label(i) for i in images if _label(i)}) or sorted({i.captions[0] for i in images})
    if len(labels) < 2:
        labels = [*labels, "something else"]
    expected_images = zs.image_embeddings(pixels).numpy()
    got_images = runtime.image_embeddings(pixels)
    expected_labels = zs.class_embeddings(labels, zs.templates).float().numpy()
    got_labels = runtime.class_embeddings(labels)
    expected = (expected_images @ expected_labels).argmax(1)
    got = (got_images @ got_labels).argmax(1)
    diff = float(np.abs(expected_images - got_images).max()) if len(pixels) else 0.0
    different = int((expected != got).sum())
    cosine = lambda a, b, axis: float((a * b).sum(axis).min()) if a.size else 1.0  # noqa: E731 - unit vectors
    return {"images": len(pixels), "labels": len(labels), "different_labels": different,
            "max_abs_embedding_diff": diff, "min_image_cosine": cosine(expected_images, got_images, 1),
            "min_label_cosine": cosine(expected_labels, got_labels, 0), "passed": different == 0 and diff < 1e-4}
