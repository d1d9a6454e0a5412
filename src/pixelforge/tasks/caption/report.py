"""The captioning run's HTML report: BLEU-1..4 and attribute match on the held-out split, curves, a gallery of
images with generated and true captions, and attention strips."""

from __future__ import annotations

from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("loss", [("train_loss", "train"), ("val_loss", "val")]), ("val BLEU-4", [("val_bleu4", "val")]))


def write_caption_report(run: Path, evaluation=None) -> Path:
    if evaluation is None:
        from pixelforge.tasks.caption.evaluate import evaluate_captions

        evaluation = evaluate_captions(run)
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS) if rows else None
    kpis = [(f"BLEU-{n}", f"{m[f'bleu{n}']:.1f}") for n in range(1, 5)]
    kpis += [(name, f"{m[key]:.1f}") for key, name in (("cider", "CIDEr-D"),) if key in m]
    if "attribute_match" in m:
        kpis.append(("attribute match", f"{100 * m['attribute_match']:.1f}%"))
    kpis.append(("images", str(m["num_images"])))
    parts = page_start(run, f"Image captioning (Show, Attend and Tell), evaluated on the <b>{m['split']}</b> split with "
                            f"beam search (width {m['beam']}, length penalty {m['length_penalty']}) and the best "
                            f"checkpoint (epoch {summary.get('best_epoch', '?')}). BLEU is corpus BLEU against all true "
                            f"captions of each image, 0-100.", kpis, curves)
    rel = lambda p: link(run, p)  # noqa: E731
    if "gallery" in evaluation.figures:
        parts.append(f"<h2>Generated captions</h2><p>Bold: the model's caption; below: two of the true ones. Captions "
                     f"that name a wrong colour or shape come first.</p><img src='{rel(evaluation.figures['gallery'])}' "
                     f"alt='gallery'>")
    if "attention" in evaluation.figures:
        parts.append(f"<h2>Attention</h2><p>For each generated word, where the decoder looked: the attention weights "
                     f"over the encoder's grid, upsampled over the image.</p>"
                     f"<img src='{rel(evaluation.figures['attention'])}' alt='attention strips'>")
    return write_page(run, parts, evaluation.unreadable)
