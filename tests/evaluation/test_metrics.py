"""Our metrics (counted with numpy, metrics/classification.py) agree with scikit-learn's and torchmetrics', and
calibration error behaves as defined."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from torchmetrics.functional.classification import multiclass_calibration_error

from pixelforge.metrics.classification import classification_metrics, worst_mistakes


def test_metrics_match_sklearn_on_a_random_fixture():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(200, 7)), dtype=torch.float32)
    targets = torch.tensor(rng.integers(0, 7, 200))
    classes = [f"c{i}" for i in range(7)]
    m = classification_metrics(logits, targets, classes)
    preds = logits.argmax(1).numpy()
    assert np.isclose(m["accuracy"], accuracy_score(targets, preds))
    assert np.isclose(m["macro_f1"], f1_score(targets, preds, average="macro"))
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=range(7), zero_division=0)
    assert np.allclose([m["per_class"][c]["recall"] for c in classes], r)
    top5 = np.mean([t in np.argsort(-row)[:5] for row, t in zip(logits.numpy(), targets.numpy())])
    assert np.isclose(m["top5_accuracy"], top5)
    assert np.array(m["confusion_matrix"]).sum() == 200


@pytest.mark.parametrize("seed,n,num_classes,absent", [(1, 300, 5, ()), (2, 40, 9, (3, 7)), (3, 7, 4, (0,)), (4, 500, 12, ())])
def test_every_number_equals_scikit_learn_and_torchmetrics(seed, n, num_classes, absent):
    """Per-class precision/recall/F1/support, macro and weighted F1, the confusion matrix (scikit-learn,
    zero_division=0) and the ECE (torchmetrics, 15 bins), also with classes never present or never predicted."""
    rng = np.random.default_rng(seed)
    logits = torch.tensor(rng.normal(scale=rng.uniform(0.5, 4), size=(n, num_classes)), dtype=torch.float32)
    targets = torch.tensor(rng.choice([c for c in range(num_classes) if c not in absent], n))
    logits[targets == 1, 1] += 2.0  # some confident right answers too
    classes = [f"c{i}" for i in range(num_classes)]
    m = classification_metrics(logits, targets, classes)
    y, p, labels = targets.numpy(), logits.argmax(1).numpy(), list(range(num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    for i, c in enumerate(classes):
        assert m["per_class"][c] == pytest.approx({"precision": precision[i], "recall": recall[i], "f1": f1[i],
                                                   "support": support[i]}, abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, labels=labels, average="macro", zero_division=0), abs=1e-12)
    assert m["weighted_f1"] == pytest.approx(f1_score(y, p, labels=labels, average="weighted", zero_division=0), abs=1e-12)
    assert m["confusion_matrix"] == confusion_matrix(y, p, labels=labels).tolist()
    expected_ece = float(multiclass_calibration_error(logits.softmax(1), targets, num_classes=num_classes, n_bins=15))
    assert m["ece"] == pytest.approx(expected_ece, abs=1e-6)


def test_ece_is_zero_for_confident_correct_and_large_for_confident_wrong():
    targets = torch.arange(4).repeat(10)
    right = torch.nn.functional.one_hot(targets, 4).float() * 50
    wrong = torch.nn.functional.one_hot((targets + 1) % 4, 4).float() * 50
    assert classification_metrics(right, targets, list("abcd"))["ece"] < 1e-3
    assert classification_metrics(wrong, targets, list("abcd"))["ece"] > 0.99
    assert classification_metrics(right, targets, list("abcd"))["top5_accuracy"] is None  # 4 classes


def test_worst_mistakes_are_the_most_confident_wrong_ones():
    logits = torch.tensor([[5.0, 0], [0, 1.0], [0, 9.0], [3.0, 0]])
    targets = torch.tensor([0, 0, 0, 1])
    assert worst_mistakes(logits, targets) == [2, 3, 1]
