"""Segmentation scores equal the ones computed independently by scikit-learn and torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelforge.metrics.segmentation import ConfusionMatrix, segmentation_scores


@pytest.fixture
def masks():
    """Random truth/prediction batches (4 classes, class 3 never appears in either), with ignored pixels."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.randint(0, 3, (5, 24, 32), generator=generator)
    pred = torch.where(torch.rand(truth.shape, generator=generator) < 0.7, truth,
                       torch.randint(0, 3, truth.shape, generator=generator))
    truth[torch.rand(truth.shape, generator=generator) < 0.1] = 255
    return truth, pred


def _accumulated(truth, pred, k=4):
    matrix = ConfusionMatrix(k, ignore_index=255)
    for t, p in zip(truth.split(2), pred.split(2)):  # batches of unequal size
        matrix.update(p, t)
    return matrix


def test_scores_equal_sklearn_on_the_non_ignored_pixels(masks):
    from sklearn.metrics import confusion_matrix

    truth, pred = masks
    keep = truth.reshape(-1) != 255
    t, p = truth.reshape(-1)[keep].numpy(), pred.reshape(-1)[keep].numpy()
    reference = confusion_matrix(t, p, labels=[0, 1, 2, 3])
    scores = _accumulated(truth, pred).compute(["a", "b", "c", "d"])
    assert scores["confusion_matrix"] == reference.tolist()
    tp = np.diag(reference).astype(float)
    iou = (tp / np.maximum(reference.sum(0) + reference.sum(1) - tp, 1))[:3]  # class "d" is absent from both
    for name, value in zip("abc", iou):
        assert abs(scores["per_class_iou"][name] - value) < 1e-9
    assert scores["per_class_iou"]["d"] is None and scores["per_class_dice"]["d"] is None
    assert abs(scores["miou"] - iou.mean()) < 1e-9
    assert abs(scores["pixel_accuracy"] - (t == p).mean()) < 1e-9
    dice = 2 * tp[:3] / (reference.sum(0) + reference.sum(1))[:3]
    assert abs(scores["dice"] - dice.mean()) < 1e-9
    assert scores["num_pixels"] == int(keep.sum())


def test_miou_equals_torchmetrics_jaccard_macro(masks):
    from torchmetrics.classification import MulticlassJaccardIndex

    truth, pred = masks
    reference = MulticlassJaccardIndex(num_classes=4, average="macro", ignore_index=255)
    per_class = MulticlassJaccardIndex(num_classes=4, average="none", ignore_index=255)
    for t, p in zip(truth.split(2), pred.split(2)):
        reference.update(p, t)
        per_class.update(p, t)
    scores = _accumulated(truth, pred).compute()
    assert abs(scores["miou"] - float(reference.compute())) < 1e-6
    assert np.allclose([scores["per_class_iou"][str(i)] for i in range(3)], per_class.compute()[:3].numpy(), atol=1e-6)


def test_a_class_only_predicted_counts_as_zero_iou():
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    pred = truth.clone()
    pred[0, 0, 0] = 1  # class 1 is predicted once but never true: a false positive, IoU 0, in the mean
    scores = segmentation_scores(_accumulated(truth, pred, 2).matrix)
    assert scores["per_class_iou"]["1"] == 0.0
    assert abs(scores["miou"] - (15 / 16 + 0) / 2) < 1e-12


def test_empty_matrix_has_no_scores():
    scores = ConfusionMatrix(3).compute()
    assert scores["miou"] is None and scores["pixel_accuracy"] is None and scores["num_pixels"] == 0
