"""Classifiers made from a handful of labelled embeddings: class prototypes (cosine), or a fitted logistic head.

Prototypes follow Snell et al. 2017 (Prototypical Networks) with the cosine metric of Chen et al. 2019 ("A Closer
Look at Few-shot Classification"): embeddings are L2-normalised, a class's prototype is the mean of its normalised
support embeddings, and a query goes to the prototype with the highest cosine similarity. With K >= 5 images per
class a logistic-regression head (scikit-learn) fitted on the same normalised embeddings can do better; below that it
has too little to fit, and `HEAD_MIN_SHOTS` keeps it off.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

HEAD_MIN_SHOTS = 5  # the fitted head needs at least this many support images in every class


def l2_normalize(embeddings: torch.Tensor) -> torch.Tensor:
    return F.normalize(embeddings.float(), dim=-1)


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[num_classes, dim]: the mean of each class's L2-normalised embeddings (not re-normalised).

    Example:
        >>> prototypes(torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0]]), torch.tensor([0, 1, 1]), 2).tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    normalized = l2_normalize(embeddings)
    sums = torch.zeros(num_classes, normalized.shape[1]).index_add_(0, labels.long(), normalized)
    counts = torch.bincount(labels.long(), minlength=num_classes).clamp(min=1).unsqueeze(1)
    return sums / counts


def cosine_scores(queries: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """[n_query, num_classes] cosine similarities, in [-1, 1]."""
    return l2_normalize(queries) @ l2_normalize(protos).T


def fit_logistic_head(embeddings: torch.Tensor, labels: torch.Tensor, seed: int = 0):
    """A scikit-learn LogisticRegression on the normalised support embeddings; `predict_proba` gives the scores.

    C=10: on unit-length features the default C=1 regularises so strongly that the probabilities stay near uniform
    (the ranking barely changes); 10 lets them mean something without overfitting 5 images a class.
    """
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    head.fit(l2_normalize(embeddings).numpy(), labels.numpy())
    return head


def logistic_scores(head, queries: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[n_query, num_classes] probabilities of a fitted head (columns in label order, as `prototypes`)."""
    proba = head.predict_proba(l2_normalize(queries).numpy())
    full = np.zeros((proba.shape[0], num_classes), dtype=np.float32)
    full[:, head.classes_] = proba
    return torch.from_numpy(full)
