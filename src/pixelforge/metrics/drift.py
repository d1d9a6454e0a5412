"""Two-sample tests on embeddings: has the data a model sees drifted from the data it was trained on?

- MMD (Gretton et al. 2012, "A Kernel Two-Sample Test", JMLR): the unbiased squared maximum mean discrepancy
  with a Gaussian kernel whose bandwidth is the median pairwise distance (the usual heuristic), and a
  permutation p-value (the share of label shufflings whose MMD reaches the observed one; Rabanser et al. 2019,
  "Failing Loudly", found this the most reliable shift detector on pooled features). Written out here (30 lines
  of numpy on a precomputed kernel matrix) rather than taken from alibi-detect, which needs TensorFlow or its
  own torch backend and many dependencies for this one test.
- Domain classifier: the cross-validated ROC AUC of a logistic regression told to separate the two sets
  (scikit-learn); 0.5 means indistinguishable, and unlike a p-value it does not shrink with the sample size,
  so it says how large a shift is.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 2
    >>> mmd_test(a, b, permutations=100, seed=0)["p_value"] < 0.05
    True
"""

from __future__ import annotations

import numpy as np


def _mmd2(kernel: np.ndarray, first: np.ndarray) -> float:
    """Unbiased MMD^2 for the pooled kernel matrix, `first` marking the first sample's rows."""
    x, y = first, ~first
    n, m = x.sum(), y.sum()
    kxx, kyy, kxy = kernel[np.ix_(x, x)], kernel[np.ix_(y, y)], kernel[np.ix_(x, y)]
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def mmd_test(a: np.ndarray, b: np.ndarray, permutations: int = 500, seed: int = 0) -> dict:
    """{"mmd2", "p_value", "bandwidth"} of samples a (n, d) and b (m, d)."""
    pooled = np.concatenate([a, b]).astype(np.float64)
    sq = (pooled ** 2).sum(1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0)
    bandwidth = float(np.sqrt(np.median(dist2[np.triu_indices(len(pooled), 1)]))) or 1.0
    kernel = np.exp(-dist2 / (2 * bandwidth ** 2))
    first = np.zeros(len(pooled), dtype=bool)
    first[:len(a)] = True
    observed = _mmd2(kernel, first)
    rng = np.random.default_rng(seed)
    reached = sum(_mmd2(kernel, rng.permutation(first)) >= observed for _ in range(permutations))
    return {"mmd2": observed, "p_value": (reached + 1) / (permutations + 1), "bandwidth": bandwidth}


def domain_auc(a: np.ndarray, b: np.ndarray, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a classifier separating a from b (5 folds, or fewer for tiny sets)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([a, b])
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    folds = StratifiedKFold(max(2, min(5, len(a), len(b))), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    return float(cross_val_score(model, x, y, cv=folds, scoring="roc_auc").mean())


def share_shift(before: dict[str, float], after: dict[str, float]) -> float:
    """Total variation distance between two class-share distributions (0: same shares, 1: disjoint).

    Example:
        >>> share_shift({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1})
        0.4
    """
    keys = set(before) | set(after)
    return round(sum(abs(before.get(k, 0.0) - after.get(k, 0.0)) for k in keys) / 2, 6)
