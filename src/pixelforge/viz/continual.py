"""The heat map of a continual-learning sequence's accuracy matrix (metrics/continual.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_accuracy_matrix(matrix: list[list[float | None]], path: Path, title: str = "accuracy matrix",
                         task_names: list[str] | None = None) -> Path:
    """Rows: after training task i; columns: accuracy on task j's test data (blank where not measured)."""
    n = len(matrix)
    values = np.array([[np.nan if v is None else v for v in row[:n]] + [np.nan] * (n - len(row[:n]))
                       for row in matrix], dtype=float)
    names = task_names or [f"task {i + 1}" for i in range(n)]
    size = max(3.5, 0.8 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(values):
        if not np.isnan(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color="black" if v > 0.6 else "white")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), [f"after {name}" for name in names])
    ax.set_xlabel("accuracy on the test data of")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
