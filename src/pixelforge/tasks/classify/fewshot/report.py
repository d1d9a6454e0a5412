"""What `pixelforge fewshot --out DIR` writes: predictions.json, a gallery of query images with their predicted
labels (mistakes first, in red), and a confusion matrix when the queries are labelled. Nothing is overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelforge.data.images import ImageReadError, load_rgb
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.viz.grid import plot_gallery
from pixelforge.viz.plots import plot_confusion

FILES = ("predictions.json", "gallery.png", "confusion_matrix.png")
GALLERY_IMAGES = 24


def check_out(out: Path) -> Path:
    """Refuse an --out folder that already holds a few-shot report (before any work is done)."""
    out = out.expanduser()
    if out.exists() and not out.is_dir():
        raise PixelforgeError(f"{out}: --out must be a folder; a file of that name exists")
    taken = [name for name in FILES if (out / name).exists()]
    if taken:
        raise PixelforgeError(f"{out / taken[0]}: exists; choose another --out (few-shot reports are never overwritten)")
    return out


def _thumbnail(path: Path, side: int = 160) -> np.ndarray:
    try:
        image = load_rgb(path, min_side=side)
    except ImageReadError:
        return np.zeros((side, side, 3), np.uint8)
    image.thumbnail((side, side))
    return np.asarray(image)


def write_gallery(result: dict, samples, path: Path) -> Path:
    rows = result["predictions"]
    order = sorted(range(len(rows)), key=lambda i: (rows[i].get("truth", rows[i]["label"]) == rows[i]["label"],
                                                    -rows[i]["score"]))[:GALLERY_IMAGES]
    titles, colors = [], []
    for i in order:
        row = rows[i]
        title = f"{row['label']} {row['score']:.2f}"
        if "truth" in row:
            title += f"\ntrue: {row['truth']}"
        titles.append(title)
        colors.append("black" if "truth" not in row else ("green" if row["truth"] == row["label"] else "crimson"))
    return plot_gallery([_thumbnail(samples[i].path) for i in order], titles, path, colors=colors)


def write_report(out: Path, result: dict, samples) -> dict:
    """Write the report files into `out`; returns {name: path} of the figures."""
    out.mkdir(parents=True, exist_ok=True)
    rd.write_json(out / "predictions.json", {k: v for k, v in result.items() if k != "figures"})
    figures = {"gallery": str(write_gallery(result, samples, out / "gallery.png"))}
    if result["accuracy"] is not None:
        from sklearn.metrics import confusion_matrix

        classes = result["classes"]
        matrix = confusion_matrix([r["truth"] for r in result["predictions"]],
                                  [r["label"] for r in result["predictions"]], labels=classes)
        figures["confusion_matrix"] = str(plot_confusion(matrix.tolist(), classes, out / "confusion_matrix.png"))
    return figures
