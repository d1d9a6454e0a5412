"""Classification metrics from logits: accuracy, top-5, per-class precision/recall/F1, calibration, confusion.

scikit-learn computes the per-class table and torchmetrics the expected calibration error (15 bins, L1).
"""

from __future__ import annotations

import numpy as np
import torch


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    from torchmetrics.functional.classification import multiclass_calibration_error

    num_classes = len(classes)
    probs = logits.softmax(1)
    preds = probs.argmax(1)
    y, p = targets.numpy(), preds.numpy()
    labels = list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    result = {
        "accuracy": float((preds == targets).float().mean()) if len(targets) else 0.0,
        "top5_accuracy": None,
        "macro_f1": float(f1_score(y, p, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, p, labels=labels, average="weighted", zero_division=0)),
        "ece": float(multiclass_calibration_error(probs, targets, num_classes=num_classes, n_bins=15)) if len(targets) else 0.0,
        "num_images": int(len(targets)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y, p, labels=labels).tolist(),
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
