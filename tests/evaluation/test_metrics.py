"""Our metrics agree with scikit-learn's, and calibration error behaves as defined."""

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

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
