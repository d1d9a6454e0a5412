"""The segmentation run's HTML report: mIoU and friends, curves, per-class IoU/Dice, confusion matrix, examples."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("loss", [("train_loss", "train"), ("val_loss", "val")]), ("val mIoU", [("val_miou", "val")]))


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def _per_class_table(metrics: dict) -> str:
    pixels = [sum(row) for row in metrics["confusion_matrix"]]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(iou)}</td><td>{_fmt(metrics['per_class_dice'][name])}</td>"
        f"<td>{pixels[i]}</td></tr>" for i, (name, iou) in enumerate(metrics["per_class_iou"].items())
    )
    return f"<table><tr><th>class</th><th>IoU</th><th>Dice</th><th>true pixels</th></tr>{rows}</table>"


def write_segmentation_report(run: Path, evaluation=None) -> Path:
    """Write RUN/report.html from an evaluation (`evaluate_segmentation`'s result; by default best.ckpt on the
    run's val split at full mask resolution) and the run's metrics.csv."""
    if evaluation is None:
        from pixelforge.tasks.segment.evaluate import evaluate_segmentation

        evaluation = evaluate_segmentation(run, split="val")
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS) if rows else None
    rel = lambda p: link(run, p)  # noqa: E731
    kpis = [("mIoU", _fmt(m["miou"])), ("Dice", _fmt(m["dice"])), ("pixel accuracy", _fmt(m["pixel_accuracy"])),
            ("images", str(m["num_images"]))]
    parts = page_start(run, f"Semantic segmentation, evaluated on the <b>{html.escape(m['split'])}</b> split at full "
                            f"mask resolution with the best checkpoint (epoch {summary.get('best_epoch', '?')}). mIoU "
                            f"averages the classes present in the truth or the prediction; ignored pixels are not "
                            f"scored.", kpis, curves)
    parts.append(f"<h2>Per-class scores</h2>{_per_class_table(m)}")
    if "predictions" in evaluation.figures:
        parts.append(f"<h2>Examples: image, truth, prediction</h2><p>The first images of the split, then the ones "
                     f"with the lowest pixel accuracy.</p><img src='{rel(evaluation.figures['predictions'])}' alt='predictions'>")
    parts.append(f"<h2>Confusion matrix</h2><img src='{rel(evaluation.figures['confusion_matrix'])}' alt='confusion'>")
    return write_page(run, parts, evaluation.unreadable)
