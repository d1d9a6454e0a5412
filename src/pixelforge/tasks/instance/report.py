"""An instance-segmentation run's HTML report: mask and box COCO metrics, per-class AP, PR curves, a gallery."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.tasks.common.boxes import format_coco as fmt
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("loss (sum of Mask R-CNN's losses)", [("train_loss", "train")]),
                ("validation COCO mAP", [("val_mask_map50", "mask mAP50"), ("val_mask_map", "mask mAP@[.5:.95]"),
                                         ("val_map50", "box mAP50")]))


def write_instance_report(run: Path, evaluation=None) -> Path:
    """Evaluate best.ckpt on the run's val split (unless `evaluation` is given) and write report.html + figures."""
    from pixelforge.tasks.instance.evaluate import evaluate_instance

    run = Path(run)
    evaluation = evaluation or evaluate_instance(run, split="val")
    m, box = evaluation.metrics, evaluation.metrics["box"]
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS, ylim_last=(0, 1)) if rows else None
    kpis = [(k, fmt(v)) for k, v in (("mask mAP50", m["map50"]), ("mask mAP@[.5:.95]", m["map"]),
                                     ("box mAP50", box["map50"]), ("box mAP@[.5:.95]", box["map"]))]
    keys = [("AP@[.5:.95]", "map"), ("AP50", "map50"), ("AP75", "map75"), ("AP small (< 32² px)", "map_small"),
            ("AP medium", "map_medium"), ("AP large (> 96² px)", "map_large"), ("AR@100", "mar_100")]
    table = "".join(f"<tr><td>{k}</td><td>{fmt(m[key])}</td><td>{fmt(box[key])}</td></tr>" for k, key in keys)
    per_class = "".join(f"<tr><td>{html.escape(name)}</td><td>{fmt(ap)}</td><td>{fmt(m['per_class_ap50'][name])}"
                        f"</td><td>{fmt(box['per_class'].get(name))}</td></tr>" for name, ap in m["per_class"].items())
    parts = page_start(run, f"Instance segmentation (Mask R-CNN), evaluated with COCO metrics (pycocotools, masks and "
                            f"boxes) on the <b>{html.escape(m['split'])}</b> split ({m['num_images']} images) with the "
                            f"best checkpoint (epoch {summary.get('best_epoch', '?')}).", kpis, curves)
    parts.append(f"<h2>COCO metrics</h2><table><tr><th>metric</th><th>masks</th><th>boxes</th></tr>{table}</table>"
                 "<p>— : no ground-truth objects in that size range.</p>")
    parts.append("<h2>Per-class AP</h2><table><tr><th>class</th><th>mask AP</th><th>mask AP50</th><th>box AP</th>"
                 f"</tr>{per_class}</table>")
    parts.append(f"<h2>Mask precision-recall</h2><img src='{link(run, evaluation.figures['pr_curves'])}' alt='PR curves'>")
    if "predictions" in evaluation.figures:
        parts.append("<h2>Ground truth vs predictions</h2><p>Left: true masks. Right: predicted masks and boxes "
                     f"scoring at least 0.5.</p><img src='{link(run, evaluation.figures['predictions'])}' alt='predictions'>")
    return write_page(run, parts)  # it lists the images training skipped (summary.json)
