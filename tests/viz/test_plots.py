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


def _curve_rows(losses, accs):
    return [{"epoch": float(i + 1), "train_loss": loss, "val_loss": loss, "train_acc": acc, "val_acc": acc}
            for i, (loss, acc) in enumerate(zip(losses, accs))]


def test_one_epoch_curves_have_whole_epoch_ticks_a_marker_and_labelled_axes(tmp_path, kept_figures):
    plots.plot_curves(_curve_rows([1.4], [0.27]), tmp_path / "curves.png")
    loss, accuracy = kept_figures[0].axes
    ticks = [t for t in loss.get_xticks() if loss.get_xlim()[0] <= t <= loss.get_xlim()[1]]
    assert ticks == [1.0]  # not 0.96, 0.98, ... 1.04
    assert loss.lines[0].get_marker() == "o" and len(loss.lines[0].get_xdata()) == 1
    assert "lower is better" in loss.get_ylabel() and "higher is better" in accuracy.get_ylabel()
    assert loss.get_legend() is not None


def test_a_loss_with_an_early_spike_is_drawn_on_a_log_scale(tmp_path, kept_figures):
    plots.plot_curves(_curve_rows([80.0, 0.9, 0.5, 0.3], [0.1, 0.5, 0.7, 0.8]), tmp_path / "curves.png")
    loss, accuracy = kept_figures[0].axes
    assert loss.get_yscale() == "log" and "log scale" in loss.get_ylabel()
    assert accuracy.get_yscale() == "linear"


def test_nan_metrics_are_named_in_the_panel_not_left_out_silently(tmp_path, kept_figures):
    plots.plot_curves(_curve_rows([float("nan"), float("nan")], [0.2, 0.3]), tmp_path / "curves.png")
    loss = kept_figures[0].axes[0]
    notes = " ".join(t.get_text() for t in loss.texts)
    assert "NaN/inf at epoch 1, 2" in notes and "no finite values" in notes


def test_thirty_long_class_names_that_differ_in_the_middle_keep_distinct_axis_labels(tmp_path, kept_figures):
    names = [f"species_{i:02d}_with_a_rather_long_latin_name" for i in range(30)]
    matrix = (np.eye(30, dtype=int) * 40 + 1).tolist()
    plots.plot_confusion(matrix, names, tmp_path / "cm.png")
    axes = kept_figures[0].axes[0]
    for ticks in (axes.get_xticklabels(), axes.get_yticklabels()):
        labels = [label.get_text() for label in ticks]
        assert len(set(labels)) == 30 and all(len(label) <= plots.LABEL_CHARS for label in labels), labels[:3]
        assert "species_07" in labels[7]


def test_a_metric_at_zero_on_a_fixed_0_to_1_axis_is_not_hidden_on_the_frame(tmp_path, kept_figures):
    rows = [{"epoch": 1.0, "train_loss": 2.0, "val_map": 0.0}, {"epoch": 2.0, "train_loss": 1.5, "val_map": 0.0}]
    panels = (("loss", [("train_loss", "train")]), ("mAP", [("val_map", "val")]))
    plots.plot_curves(rows, tmp_path / "curves.png", panels, ylim_last=(0, 1))
    low, high = kept_figures[0].axes[1].get_ylim()
    assert low < 0 and high > 1


def test_a_gan_s_two_losses_are_not_labelled_lower_is_better(tmp_path, kept_figures):
    rows = [{"epoch": float(e), "train_loss_d": 1.0 / e, "train_loss_g": 0.5 * e, "val_fid": 300.0 / e} for e in (1, 2)]
    panels = (("losses", [("train_loss_d", "discriminator"), ("train_loss_g", "generator")]), ("FID", [("val_fid", "val")]))
    plots.plot_curves(rows, tmp_path / "curves.png", panels)
    losses, fid = kept_figures[0].axes
    assert "better" not in losses.get_ylabel() and "lower is better" in fid.get_ylabel()
