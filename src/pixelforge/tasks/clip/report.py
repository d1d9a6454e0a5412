"""The CLIP run's HTML report: zero-shot accuracy on held-out colour-shape pairs (with and without the prompt
ensemble, beside chance), retrieval recall, training curves and a gallery of zero-shot labels."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("loss", [("train_loss", "train"), ("val_loss", "val")]),
                ("val recall@1", [("val_recall1_image_to_text", "image->text"),
                                  ("val_recall1_text_to_image", "text->image")]))


def write_clip_report(run: Path) -> Path:
    from pixelforge.tasks.clip.evaluate import evaluate_clip

    evaluation = evaluate_clip(run)
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS) if rows else None
    kpis = [("recall@1 image->text", f"{100 * m['recall1_image_to_text']:.1f}%"),
            ("recall@1 text->image", f"{100 * m['recall1_text_to_image']:.1f}%")]
    if "zeroshot_accuracy" in m:
        kpis += [("zero-shot accuracy", f"{100 * m['zeroshot_accuracy']:.1f}%"),
                 ("one template", f"{100 * m['zeroshot_accuracy_single_template']:.1f}%"),
                 ("bare label", f"{100 * m['zeroshot_accuracy_bare_label']:.1f}%"),
                 ("chance", f"{100 * m['chance']:.1f}%")]
    kpis.append(("images", str(m["num_images"])))
    parts = page_start(run, f"Contrastive image-text training (CLIP), evaluated on the <b>{m['split']}</b> split with "
                            f"the best checkpoint (epoch {summary.get('best_epoch', '?')}). Zero-shot: single-object "
                            f"images labelled by the closest of {m.get('zeroshot_labels', 0)} colour-shape names "
                            f"(held-out pairs: {', '.join(m.get('held_out_labels', [])) or 'none'}).", kpis, curves)
    if "gallery" in evaluation.figures:
        parts.append(f"<h2>Zero-shot labels</h2><p>Bold: the label the model chose among all colour-shape names; "
                     f"below: the true one. Mistakes come first.</p>"
                     f"<img src='{link(run, evaluation.figures['gallery'])}' alt='zero-shot gallery'>")
    return write_page(run, parts, evaluation.unreadable)
