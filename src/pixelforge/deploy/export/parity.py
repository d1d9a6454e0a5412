"""Parity between the PyTorch model and an exported one: numbers, and the rule that decides pass or fail.

Both sides see the same validation images through their own preprocessing (torchvision for PyTorch, NumPy/PIL in
the package), so the check covers the whole pipeline a deployed model runs, not just the graph.

Rules:
    fp32 / torchscript  max |delta logit| <= tolerance * max(1, max |logit|)   (a conversion bug shows up as >> 1e-3)
    fp16                the same with `fp16_tolerance`
    int8                validation accuracy may drop at most `max_int8_drop` points below PyTorch's, or one image,
                        whichever is more (on 49 images a single flip is 2 points: noise, not a broken model)
"""

from __future__ import annotations

import numpy as np


def compare_logits(reference: np.ndarray, candidate: np.ndarray, targets: np.ndarray) -> dict:
    """Max |delta logit|, top-1 agreement, and both accuracies (targets -1 = unknown label, left out)."""
    known = targets >= 0
    ref_top, cand_top = reference.argmax(1), candidate.argmax(1)
    return {
        "images": int(len(reference)),
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()) if len(reference) else 0.0,
        "mean_abs_logit_diff": float(np.abs(reference - candidate).mean()) if len(reference) else 0.0,
        "top1_agreement": float((ref_top == cand_top).mean()) if len(reference) else 1.0,
        "reference_accuracy": float((ref_top[known] == targets[known]).mean()) if known.any() else None,
        "accuracy": float((cand_top[known] == targets[known]).mean()) if known.any() else None,
    }


def check_logits(report: dict, reference: np.ndarray, tolerance: float) -> dict:
    """Add `tolerance_used` and `passed` for a float model (fp32, torchscript, fp16)."""
    scale = max(1.0, float(np.abs(reference).max())) if len(reference) else 1.0
    allowed = tolerance * scale
    return {**report, "tolerance": tolerance, "allowed_max_abs_logit_diff": allowed,
            "passed": report["max_abs_logit_diff"] <= allowed}


def check_accuracy_drop(report: dict, max_drop_points: float) -> dict:
    """Add `accuracy_change_points` and `passed` for a quantized model."""
    if report["accuracy"] is None:
        return {**report, "accuracy_change_points": None, "max_drop_points": max_drop_points, "passed": True}
    change = 100.0 * (report["accuracy"] - report["reference_accuracy"])
    allowed = max(max_drop_points, 100.0 / max(1, report["images"]) + 1e-9)
    return {**report, "accuracy_change_points": round(change, 3), "max_drop_points": max_drop_points,
            "allowed_drop_points": round(allowed, 3), "passed": change >= -allowed}


def describe(name: str, report: dict) -> str:
    """One line for logs, errors and the model card."""
    text = (f"{name}: max |Δlogit| {report['max_abs_logit_diff']:.2e}, top-1 agreement "
            f"{100 * report['top1_agreement']:.1f}% on {report['images']} images")
    if report.get("accuracy") is not None:
        text += f", accuracy {100 * report['accuracy']:.2f}% (PyTorch {100 * report['reference_accuracy']:.2f}%)"
    if report.get("accuracy_change_points") is not None:
        text += f", change {report['accuracy_change_points']:+.2f} points"
    return text
