"""Semantic segmentation scores from one K x K pixel confusion matrix: IoU, Dice and pixel accuracy per class.

Every score is a function of the confusion matrix (rows = true class, columns = predicted class), so batches are
accumulated into the matrix and scored once: exact over any number of images, and under DDP the matrices of all
processes are simply summed. The matrix is counted with `torch.bincount` on `true * K + pred` — the same
computation torchmetrics' `MulticlassConfusionMatrix` runs — kept as an int64 tensor that can be all-reduced and
written to JSON without a metric object's state handling.

Conventions (those of torchmetrics `JaccardIndex(average="macro")` and the Cityscapes/VOC benchmarks):
    IoU_c  = TP / (TP + FP + FN)        Dice_c = 2 TP / (2 TP + FP + FN)
    mIoU   = mean of IoU_c over the classes present in the ground truth or the prediction; a class absent from both
             has no IoU (null in per_class_iou) and is left out of the mean, not counted as 0 or 1.
    pixel_accuracy = correctly classified pixels / scored pixels. Pixels whose true value is `ignore_index` (or is
             outside 0..K-1) are not scored at all.
"""

from __future__ import annotations

import torch


class ConfusionMatrix:
    """Accumulates a K x K pixel confusion matrix over batches of (prediction, truth) masks.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(torch.tensor([[0, 1], [1, 1]]), torch.tensor([[0, 1], [0, 255]]))
        >>> cm.matrix.tolist()
        [[1, 1], [0, 1]]
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255, device: torch.device | str = "cpu"):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predicted class indices `pred` and true masks `target` (same shape, any batch layout)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from mask shape {tuple(target.shape)}")
        pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
        keep = (target >= 0) & (target < self.num_classes)  # drops ignore_index and any other out-of-range value
        k = self.num_classes
        counts = torch.bincount(target[keep] * k + pred[keep].clamp(0, k - 1), minlength=k * k)
        self.matrix += counts.reshape(k, k).to(self.matrix.device)

    def compute(self, classes: list[str] | None = None) -> dict:
        return segmentation_scores(self.matrix, classes)


def segmentation_scores(matrix, classes: list[str] | None = None) -> dict:
    """All scores of a K x K confusion matrix (rows true, columns predicted); see the module docstring.

    Returns a dict with miou, per_class_iou {name: iou or None}, dice, per_class_dice, pixel_accuracy,
    confusion_matrix (list of lists) and num_pixels.
    """
    m = torch.as_tensor(matrix, dtype=torch.float64).cpu()
    k = m.shape[0]
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    tp = m.diag()
    union = m.sum(0) + m.sum(1) - tp  # TP + FP + FN: zero exactly when the class is absent from truth and prediction
    present = union > 0
    iou = torch.where(present, tp / union.clamp_min(1), torch.nan)
    dice = torch.where(present, 2 * tp / (union + tp).clamp_min(1), torch.nan)
    total = m.sum()

    def mean(values: torch.Tensor) -> float | None:
        return float(values[present].mean()) if bool(present.any()) else None

    def per_class(values: torch.Tensor) -> dict:
        return {name: (float(v) if present[i] else None) for i, (name, v) in enumerate(zip(names, values))}

    return {
        "miou": mean(iou),
        "per_class_iou": per_class(iou),
        "dice": mean(dice),
        "per_class_dice": per_class(dice),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else None,
        "confusion_matrix": m.long().tolist(),
        "num_pixels": int(total),
    }

