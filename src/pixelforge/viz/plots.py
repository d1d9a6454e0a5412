"""PNG figures a person looks at: confusion matrix, training curves, the learning-rate range test (a gallery of
images with titles is viz/grid.py)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


LABEL_CHARS = 20  # class names longer than this are shortened on axes (the full names are in the report's tables)


def short_label(name: str, chars: int = LABEL_CHARS) -> str:
    """`name` shortened in the middle, where long names that differ at the end ("..._v1", "..._v2") stay apart."""
    if len(name) <= chars:
        return name
    head = (chars - 1) // 2
    return name[:head] + "\u2026" + name[len(name) - (chars - 1 - head):]


def short_labels(names: list[str], chars: int = LABEL_CHARS) -> list[str]:
    """`short_label` of each name, unless two would read the same ("species_0\u2026latin_name" thirty times): then
    each keeps the part where the names differ, with as much of the shared start and end as fits."""
    labels = [short_label(name, chars) for name in names]
    if len(set(labels)) == len(labels):
        return labels
    prefix = len(os.path.commonprefix(names))
    suffix = min(len(os.path.commonprefix([name[::-1] for name in names])), min(map(len, names)) - prefix)
    shortened = []
    for name in names:
        middle = name[prefix:len(name) - suffix]
        room = chars - len(middle)
        if room < 2:  # the differing parts are long themselves
            shortened.append(short_label(middle, chars))
            continue
        head, tail = name[:prefix], name[len(name) - suffix:]
        left = head if len(head) <= room // 2 else "\u2026" + head[len(head) - (room // 2 - 1):] if room // 2 > 1 else ""
        right_room = room - len(left)
        right = tail if len(tail) <= right_room else tail[:right_room - 1] + "\u2026" if right_room > 1 else ""
        shortened.append(left + middle + right)
    return shortened


def fit_text(text, width_px: float) -> None:
    """Wrap a matplotlib Text (at spaces, else inside long words) until it is at most `width_px` wide."""
    renderer = text.get_figure().canvas.get_renderer()
    original = text.get_text()
    longest = max(len(line) for line in original.splitlines() or [""])
    while longest > 4 and text.get_window_extent(renderer).width > width_px:
        longest = min(longest - 1, int(longest * width_px / text.get_window_extent(renderer).width))
        text.set_text("\n".join(textwrap.fill(line, max(longest, 4)) for line in original.splitlines()))


def plot_confusion(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    """Counts in the cells, each row's share as colour."""
    matrix = np.asarray(matrix)
    normalized = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    return plot_matrix(normalized, [[str(c) for c in row] for row in matrix], classes, path,
                       "confusion matrix (counts; colour = row share)", max_annotated=30)


def plot_matrix(shares: np.ndarray, cells: list[list[str]], classes: list[str], path: Path, title: str,
                max_annotated: int) -> Path:
    """A class-by-class matrix (true rows, predicted columns) coloured by `shares` in [0, 1], with `cells` printed
    while there are at most `max_annotated` classes; the title and labels are fitted inside the figure."""
    size = max(4.0, 0.5 * len(classes) + 2)
    # Constrained layout keeps the tick labels and the (figure-wide) title inside the figure.
    fig, ax = plt.subplots(figsize=(size, size), layout="constrained")
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    labels = short_labels(classes)
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= max_annotated:
        for (i, j), share in np.ndenumerate(shares):
            ax.text(j, i, cells[i][j], ha="center", va="center", fontsize=8, color="white" if share > 0.5 else "black")
    fit_text(fig.suptitle(title), 0.95 * fig.bbox.width)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# Training curves per task: one panel a tuple (title, [(metrics.csv column, legend label), ...]).
CLASSIFY_PANELS = (("loss", [("train_loss", "train"), ("val_loss", "val")]),
                   ("accuracy", [("train_acc", "train"), ("val_acc", "val")]))


# Which way a curve should go, read from its metrics.csv column: the y-axis label says it.
LOWER_IS_BETTER = ("loss", "fid", "kid", "bpp", "mse")
ADVERSARIAL = ("_loss_d", "_loss_g")  # a GAN's discriminator and generator losses
HIGHER_IS_BETTER = ("acc", "map", "miou", "iou", "psnr", "ssim", "bleu", "cider", "recall", "f1")


def direction_of(keys: list[str]) -> str:
    """Which way metrics.csv columns all of one kind should go: "lower is better", "higher is better" or "" (unknown)."""
    if any(key.endswith(ADVERSARIAL) for key in keys):  # the players trade off: a lower one is not a better model
        return ""
    if all(any(word in key for word in LOWER_IS_BETTER) for key in keys):
        return "lower is better"
    if all(any(word in key for word in HIGHER_IS_BETTER) for key in keys):
        return "higher is better"
    return ""


def plot_curves(rows: list[dict], path: Path, panels=CLASSIFY_PANELS, ylim_last: tuple | None = None) -> Path:
    """One line per (column, label) of each panel against the epoch; columns a run lacks are skipped.

    Epochs are whole numbers on the x axis (one epoch is one marked point, not a 0.96..1.04 axis); the y axis is
    labelled with the panel's quantity and which way is better; a loss spanning more than 20x is drawn on a log scale
    so one early spike does not flatten the rest; NaN or infinite values are named in the panel, not dropped silently.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    for ax, (title, lines) in zip(np.atleast_1d(axes), panels):
        fixed = ylim_last is not None and ax is np.atleast_1d(axes)[-1]
        present = [(key, label) for key, label in lines if any(r.get(key) is not None for r in rows)]
        for key, label in present:
            ax.plot(epochs, [r.get(key) for r in rows], marker="o", label=label)
        values = [r.get(key) for r in rows for key, _ in present if r.get(key) is not None]
        finite = [v for v in values if np.isfinite(v)]
        direction = direction_of([key for key, _ in lines])
        log = (direction == "lower is better" and finite and min(finite) > 0 and max(finite) > 20 * min(finite)
               and not fixed)
        if log:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        note = ", ".join(filter(None, [direction, "log scale" if log else ""]))
        ax.set_ylabel(f"{title}\n({note})" if note else title)
        if len(set(epochs)) <= 12:  # few epochs: each its own tick (MaxNLocator falls back to 0.96..1.04 for one)
            ax.set_xticks(sorted(set(epochs)))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        bad = sorted({int(r["epoch"]) for r in rows for key, _ in present if r.get(key) is not None
                      and not np.isfinite(r[key])})
        if not present or not finite:
            ax.text(0.5, 0.5, "no finite values logged" if present else "not logged by this run",
                    ha="center", va="center", transform=ax.transAxes, color="gray")
        if bad:
            ax.text(0.5, 0.02, f"NaN/inf at epoch {', '.join(map(str, bad))}", ha="center", va="bottom",
                    transform=ax.transAxes, color="crimson", fontsize=8)
        if present:
            ax.legend()
    if ylim_last:  # a little beyond the range, so a curve lying on 0 (an untrained detector's mAP) stays visible
        low, high = ylim_last
        np.atleast_1d(axes)[-1].set_ylim(low - 0.03 * (high - low), high + 0.03 * (high - low))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_lr_find(lrs: list[float], losses: list[float], suggestion: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.axvline(suggestion, color="red", linestyle="--", label=f"suggested {suggestion:.1e}")
    ax.set_xscale("log")
    if losses:
        # The diverging tail can be 5x the rest and would flatten the fall that matters: the axis ends a little
        # above the highest loss before the minimum, and the tail runs off the top.
        lowest = losses.index(min(losses))
        head = max(losses[:lowest + 1])
        span = max(head - losses[lowest], 1e-3)
        ax.set_ylim(losses[lowest] - 0.1 * span, head + 0.6 * span)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title("learning-rate range test")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
