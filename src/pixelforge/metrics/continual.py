"""Metrics of a continual-learning sequence from its accuracy matrix R, where R[i][j] is the accuracy on task j's
test data after training on task i (tasks 0..T-1; R[i][j] for j > i may be None: not measured).

- average accuracy: the mean of the last row, R[T-1][j] over j (Chaudhry et al. 2018, "Riemannian Walk", A_T);
- backward transfer: mean over j < T-1 of R[T-1][j] - R[j][j] (Lopez-Paz & Ranzato 2017, "Gradient Episodic
  Memory", BWT; negative = forgetting);
- forgetting: mean over j < T-1 of max over l in j..T-2 of R[l][j] - R[T-1][j] (Chaudhry et al. 2018, F_T).

A one-task sequence has no backward transfer or forgetting: both are None.

Example:
    >>> R = [[0.9, None], [0.5, 0.8]]
    >>> average_accuracy(R), round(backward_transfer(R), 4), round(forgetting(R), 4)
    (0.65, -0.4, 0.4)
"""

from __future__ import annotations


def average_accuracy(matrix: list[list[float | None]]) -> float:
    last = matrix[-1][:len(matrix)]
    return sum(last) / len(last)


def backward_transfer(matrix: list[list[float | None]]) -> float | None:
    t = len(matrix) - 1
    if t == 0:
        return None
    return sum(matrix[t][j] - matrix[j][j] for j in range(t)) / t


def forgetting(matrix: list[list[float | None]]) -> float | None:
    t = len(matrix) - 1
    if t == 0:
        return None
    return sum(max(matrix[l][j] for l in range(j, t)) - matrix[t][j] for j in range(t)) / t


def sequence_metrics(matrix: list[list[float | None]]) -> dict:
    """{"accuracy_matrix", "avg_accuracy", "bwt", "forgetting"} of a sequence's matrix."""
    return {"accuracy_matrix": matrix, "avg_accuracy": average_accuracy(matrix), "bwt": backward_transfer(matrix),
            "forgetting": forgetting(matrix)}
