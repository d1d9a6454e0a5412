"""Classification metrics from logits: accuracy, top-5, per-class precision/recall/F1, calibration, confusion.

Counted here (numpy for the table, torch for the ECE) rather than imported from scikit-learn and torchmetrics,
which define them: importing those two costs about a second of every `pixelforge train` (issue 20, lever L16), more
than the arithmetic below. tests/evaluation/test_metrics.py checks every number against scikit-learn's
`precision_recall_fscore_support` / `f1_score` / `confusion_matrix` (zero_division=0) and torchmetrics'
`multiclass_calibration_error` (15 bins, L1) on random predictions.
"""

from __future__ import annotations

import numpy as np
import torch


def confusion(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class]."""
    return np.bincount(targets * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def calibration_error(probs: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error: |accuracy - confidence| of the top-1 prediction in `n_bins` equal-width bins,
    weighted by the bins' shares of the images (torchmetrics' binning: a confidence of exactly 1 has a bin of its
    own)."""
    if len(targets) == 0:
        return 0.0
    confidences, predictions = probs.float().max(1)
    correct = predictions.eq(targets).float()
    index = torch.bucketize(confidences, torch.linspace(0, 1, n_bins + 1), right=True) - 1
    count = torch.zeros(n_bins + 1).scatter_add_(0, index, torch.ones_like(confidences))
    confidence = torch.nan_to_num(torch.zeros(n_bins + 1).scatter_add_(0, index, confidences) / count)
    accuracy = torch.nan_to_num(torch.zeros(n_bins + 1).scatter_add_(0, index, correct) / count)
    return float(((accuracy - confidence).abs() * count / count.sum()).sum())


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(len(numerator))
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
    num_classes = len(classes)
    probs = logits.softmax(1)
    preds = probs.argmax(1)
    matrix = confusion(targets.numpy().astype(np.int64), preds.numpy().astype(np.int64), num_classes)
    tp, support, predicted = np.diag(matrix), matrix.sum(1), matrix.sum(0)
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)  # = 2PR / (P + R), 0 where a class is neither present nor predicted
    result = {
        "accuracy": float((preds == targets).float().mean()) if len(targets) else 0.0,
        "top5_accuracy": None,
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
        "ece": calibration_error(probs, targets, n_bins=15),
        "num_images": int(len(targets)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": matrix.tolist(),
    }
    if num_classes > 5:  # top-5 of five or fewer classes is always 1.0
        result["top5_accuracy"] = float((logits.topk(5, 1).indices == targets[:, None]).any(1).float().mean())
    return result


def worst_mistakes(logits: torch.Tensor, targets: torch.Tensor, k: int = 12) -> list[int]:
    """Indices of the most confident wrong predictions, most confident first."""
    probs = logits.softmax(1)
    confidence, preds = probs.max(1)
    wrong = np.flatnonzero((preds != targets).numpy())
    return [int(i) for i in wrong[np.argsort(-confidence.numpy()[wrong])][:k]]
