"""Figures a person reads: titles lie inside the figure and apart from each other, even for long class names."""

from __future__ import annotations

import numpy as np
import pytest

from pixelforge.viz import plots

LONG = [f"a_rather_long_class_name_number_{i}" for i in range(4)]


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures the plotting functions close, kept open to measure."""
    figures, close = [], plots.plt.close
    monkeypatch.setattr(plots.plt, "close", figures.append)
    yield figures
    for figure in figures:
        close(figure)


def _extent(text):
    return text.get_window_extent(text.get_figure().canvas.get_renderer())


def _inside(box, figure) -> bool:
    return box.x0 >= figure.bbox.x0 and box.x1 <= figure.bbox.x1 and box.y0 >= figure.bbox.y0 and box.y1 <= figure.bbox.y1


def test_confusion_matrix_title_fits_with_long_class_names(tmp_path, kept_figures):
    matrix = np.arange(16).reshape(4, 4).tolist()
    plots.plot_confusion(matrix, LONG, tmp_path / "cm.png")
    figure = kept_figures[0]
    title = next(t for t in [*figure.texts, figure.axes[0].title] if "confusion matrix" in t.get_text())
    assert _inside(_extent(title), figure), title.get_text()
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert len(set(labels)) == 4 and all(len(label) <= plots.LABEL_CHARS for label in labels)
    assert all(_inside(_extent(label), figure) for label in figure.axes[0].get_xticklabels())


def test_gallery_titles_fit_their_panels(tmp_path, kept_figures):
    images = [np.zeros((64, 64, 3), np.uint8)] * 8
    titles = [f"true {LONG[i % 4]}\npred another_{LONG[(i + 1) % 4]} 0.93" for i in range(8)]
    plots.plot_gallery(images, titles, tmp_path / "gallery.png")
    figure = kept_figures[0]
    boxes = [_extent(ax.title) for ax in figure.axes if ax.title.get_text()]
    assert len(boxes) == 8 and all(_inside(box, figure) for box in boxes)
    first_row = sorted(boxes[:6], key=lambda box: box.x0)
    assert all(left.x1 <= right.x0 for left, right in zip(first_row, first_row[1:]))  # neighbours do not overlap
