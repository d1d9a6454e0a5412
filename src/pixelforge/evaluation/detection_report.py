"""A detection run's HTML report: training curves, COCO metrics, per-class AP, PR curves and a predictions gallery."""

from __future__ import annotations

import html
import math
from pathlib import Path

from pixelforge.engine import run_dir as rd
from pixelforge.evaluation.plots import plot_curves
from pixelforge.evaluation.report import _STYLE


def _fmt(value) -> str:
    return "—" if value is None or (isinstance(value, float) and (math.isnan(value) or value < 0)) else f"{value:.3f}"


CURVE_PANELS = (("loss (sum of the detector's losses)", [("train_loss", "train")]),
                ("validation COCO mAP", [("val_map50", "val mAP50"), ("val_map", "val mAP@[.5:.95]")]))


def write_detection_report(run: Path, evaluation=None) -> Path:
    """Evaluate the run's best checkpoint on its val split (unless given) and write `report.html`."""
    from pixelforge.evaluation.detection import evaluate_detection

    evaluation = evaluation or evaluate_detection(run, split="val")
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS, ylim_last=(0, 1)) if rows else None
    rel = lambda p: html.escape(Path(p).relative_to(run).as_posix())  # noqa: E731 - figures are linked relatively
    kpis = [("mAP50", m["map50"]), ("mAP@[.5:.95]", m["map"]), ("mAP75", m["map75"]), ("AR@100", m["mar_100"])]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in
                    [("AP small (< 32² px)", m["map_small"]), ("AP medium", m["map_medium"]),
                     ("AP large (> 96² px)", m["map_large"]), ("AR@1", m["mar_1"]), ("AR@10", m["mar_10"]),
                     ("AR small", m["mar_small"]), ("AR medium", m["mar_medium"]), ("AR large", m["mar_large"])])
    per_class = "".join(f"<tr><td>{html.escape(name)}</td><td>{_fmt(ap)}</td><td>{_fmt(m['per_class_ap50'][name])}</td></tr>"
                        for name, ap in m["per_class"].items())
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>pixelforge report: {html.escape(run.name)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(run.name)}</h1>",
        f"<p>Object detection, evaluated with COCO metrics (pycocotools) on the <b>{html.escape(m['split'])}</b> split "
        f"({m['num_images']} images) with the best checkpoint (epoch {summary.get('best_epoch', '?')}).</p>",
        "".join(f"<div class='kpi'>{k}<b>{_fmt(v)}</b></div>" for k, v in kpis),
    ]
    if curves:
        parts.append(f"<h2>Training curves</h2><img src='{rel(curves)}' alt='curves'>")
    parts.append(f"<h2>COCO metrics</h2><table><tr><th>metric</th><th>value</th></tr>{table}</table>"
                 "<p>— : no ground-truth objects in that size range.</p>")
    parts.append(f"<h2>Per-class AP</h2><table><tr><th>class</th><th>AP@[.5:.95]</th><th>AP50</th></tr>{per_class}</table>")
    parts.append(f"<h2>Precision-recall</h2><img src='{rel(evaluation.figures['pr_curves'])}' alt='PR curves'>")
    parts.append(f"<h2>Predictions vs ground truth</h2><p>Green: ground truth. Coloured, with class and score: "
                 f"detections scoring at least 0.3.</p><img src='{rel(evaluation.figures['gallery'])}' alt='gallery'>")
    if summary.get("unreadable_images"):
        items = "".join(f"<li>{html.escape(e)}</li>" for e in summary["unreadable_images"])
        parts.append(f"<h2>Skipped images</h2><ul>{items}</ul>")
    config = (run / "config.yaml").read_text()
    parts.append(f"<h2>Configuration</h2><pre>{html.escape(config)}</pre></body></html>")
    path = run / "report.html"
    rd.atomic_write_bytes(path, lambda handle: handle.write("\n".join(parts).encode()))
    return path
