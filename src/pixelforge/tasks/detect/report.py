"""A detection run's HTML report: training curves, COCO metrics, per-class AP, PR curves and a predictions gallery."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.tasks.common.boxes import format_coco as fmt
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves


CURVE_PANELS = (("loss (sum of the detector's losses)", [("train_loss", "train")]),
                ("validation COCO mAP", [("val_map50", "val mAP50"), ("val_map", "val mAP@[.5:.95]")]))


def write_detection_report(run: Path, evaluation=None) -> Path:
    """Evaluate the run's best checkpoint on its val split (unless given) and write `report.html`."""
    from pixelforge.tasks.detect.evaluate import evaluate_detection

    evaluation = evaluation or evaluate_detection(run, split="val")
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS, ylim_last=(0, 1)) if rows else None
    rel = lambda p: link(run, p)  # noqa: E731
    kpis = [(k, fmt(v)) for k, v in (("mAP50", m["map50"]), ("mAP@[.5:.95]", m["map"]), ("mAP75", m["map75"]),
                                     ("AR@100", m["mar_100"]))]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v)}</td></tr>" for k, v in
                    [("AP small (< 32² px)", m["map_small"]), ("AP medium", m["map_medium"]),
                     ("AP large (> 96² px)", m["map_large"]), ("AR@1", m["mar_1"]), ("AR@10", m["mar_10"]),
                     ("AR small", m["mar_small"]), ("AR medium", m["mar_medium"]), ("AR large", m["mar_large"])])
    per_class = "".join(f"<tr><td>{html.escape(name)}</td><td>{fmt(ap)}</td><td>{fmt(m['per_class_ap50'][name])}</td></tr>"
                        for name, ap in m["per_class"].items())
    parts = page_start(run, f"Object detection, evaluated with COCO metrics (pycocotools) on the "
                            f"<b>{html.escape(m['split'])}</b> split ({m['num_images']} images) with the best checkpoint "
                            f"(epoch {summary.get('best_epoch', '?')}).", kpis, curves)
    parts.append(f"<h2>COCO metrics</h2><table><tr><th>metric</th><th>value</th></tr>{table}</table>"
                 "<p>— : no ground-truth objects in that size range.</p>")
    parts.append(f"<h2>Per-class AP</h2><table><tr><th>class</th><th>AP@[.5:.95]</th><th>AP50</th></tr>{per_class}</table>")
    parts.append(f"<h2>Precision-recall</h2><img src='{rel(evaluation.figures['pr_curves'])}' alt='PR curves'>")
    parts.append(f"<h2>Predictions vs ground truth</h2><p>Green: ground truth. Coloured, with class and score: "
                 f"detections scoring at least 0.3.</p><img src='{rel(evaluation.figures['gallery'])}' alt='gallery'>")
    return write_page(run, parts)  # it lists the images training skipped (summary.json)
