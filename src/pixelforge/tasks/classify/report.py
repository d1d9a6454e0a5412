"""The run's HTML report: curves, confusion matrix, per-class table and worst mistakes, in one static page."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

def _table(per_class: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td>"
        f"<td>{m['f1']:.3f}</td><td>{m['support']}</td></tr>" for name, m in per_class.items()
    )
    return f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"


def write_run_report(run: Path, evaluation=None, cached=None) -> Path:
    """Evaluate the run's best checkpoint on its held-out split (unless given) and write `report.html`.
    `cached`: the training's validation features (inference.CachedFeatures), reused when that split is scored."""
    from pixelforge.tasks.classify.evaluate import evaluate

    evaluation = evaluation or evaluate(run, cached=cached)
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png") if rows else None
    rel = lambda p: link(run, p)  # noqa: E731
    kpis = [("accuracy", f"{m['accuracy']:.4f}"), ("macro F1", f"{m['macro_f1']:.4f}"), ("ECE", f"{m['ece']:.4f}"),
            ("images", str(m["num_images"]))]
    if m.get("temperature", 1.0) != 1.0:  # temperature scaling (calibration.py): the ECE it started from
        kpis.insert(3, (f"ECE before T={m['temperature']:.2f}", f"{m['ece_uncalibrated']:.4f}"))
    if m.get("top5_accuracy") is not None:
        kpis.insert(1, ("top-5", f"{m['top5_accuracy']:.4f}"))
    parts = page_start(run, f"Evaluated on the <b>{html.escape(m['split'])}</b> split with the best checkpoint "
                            f"(epoch {summary.get('best_epoch', '?')}, training path: "
                            f"{html.escape(str(summary.get('path', '?')))}).", kpis, curves)
    parts.append(f"<h2>Confusion matrix</h2><img src='{rel(evaluation.figures['confusion_matrix'])}' alt='confusion matrix'>")
    parts.append(f"<h2>Per-class metrics</h2>{_table(m['per_class'])}")
    if (run / "continual_matrix.png").exists():  # a continual step: the sequence's accuracy matrix
        c = m.get("continual", {})
        parts.append(f"<h2>Continual learning ({html.escape(str(c.get('strategy')))})</h2><p>average accuracy "
                     f"{c.get('avg_accuracy', 0):.4f}, BWT {c.get('bwt') or 0:+.4f}, forgetting "
                     f"{c.get('forgetting') or 0:.4f}</p><img src='{rel(run / 'continual_matrix.png')}' "
                     f"alt='accuracy matrix'>")
    if "mistakes" in evaluation.figures:
        parts.append(f"<h2>Most confident mistakes</h2><img src='{rel(evaluation.figures['mistakes'])}' alt='mistakes'>")
    else:
        parts.append("<h2>Mistakes</h2><p>None on this split.</p>")
    if "gradcam" in evaluation.figures:
        from pixelforge.explain.gallery import gallery_html

        parts.append(gallery_html(rel(evaluation.figures["gradcam"]), m.get("faithfulness")))
    if "groups" in m:
        from pixelforge.metrics.fairness import groups_html

        parts.append(groups_html(m["groups"]))
    return write_page(run, parts)  # it lists the images training skipped (summary.json)
