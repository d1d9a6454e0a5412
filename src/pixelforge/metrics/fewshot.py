"""How few-shot results are reported: mean episode accuracy with a 95% confidence interval.

The literature (Vinyals et al. 2016; Chen et al. 2019, "A Closer Look at Few-shot Classification") reports the mean
accuracy over E episodes +- 1.96 * std / sqrt(E), with the population standard deviation of the per-episode
accuracies (numpy's default, as in their code). Reported the same way, our numbers can sit beside published ones.
"""

from __future__ import annotations

import math

import numpy as np


def mean_confidence_interval(accuracies) -> tuple[float, float]:
    """(mean, half-width of the 95% interval) of per-episode accuracies: mean +- 1.96 std / sqrt(E).

    Example:
        >>> mean, half = mean_confidence_interval([0.5, 1.0])
        >>> round(mean, 3), round(half, 3)
        (0.75, 0.347)
    """
    values = np.asarray(accuracies, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no episodes")
    return float(values.mean()), float(1.96 * values.std() / math.sqrt(values.size))
