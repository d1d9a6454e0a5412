"""The GAN run's HTML report: FID/KID at n with the real-vs-real floor, conditional accuracy and coverage, the
losses of both players and the per-epoch FID, the fixed-noise grids as a GIF over epochs, and the last grid."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves


def _panels(rows: list[dict]) -> tuple:
    fid = next((k for k in (rows[0] if rows else {}) if k.startswith("val_fid_")), "val_fid_lite0")
    return (("losses", [("train_loss_d", "discriminator"), ("train_loss_g", "generator")]),
            (fid.removeprefix("val_") + " (validation n)", [(fid, "val")]),
            ("diversity / real", [("val_diversity", "val")]))


def write_gan_report(run: Path, evaluation=None) -> Path:
    """RUN/report.html from `evaluate_gan` (default: best.ckpt, the run's own data) and metrics.csv; RUN/samples.gif
    from the per-epoch grids."""
    from pixelforge.tasks.gan.images import write_gif

    if evaluation is None:
        from pixelforge.tasks.gan.evaluate import evaluate_gan

        evaluation = evaluate_gan(run)
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", _panels(rows)) if rows else None
    grids = sorted((run / "samples").glob("epoch_*.png"))
    gif = write_gif(grids, run / "samples.gif")
    fid = next(k for k in m if k.startswith("fid_") and k not in ("fid_real_floor", "fid_over_floor"))
    kid = fid.replace("fid_", "kid_")
    kpis = [(fid, f"{m[fid]:.3f}"), ("real-vs-real floor", f"{m['fid_real_floor']:.3f}"),
            ("ratio to floor", f"{m['fid_over_floor']:.2f}x"), (kid, f"{m[kid]:.4f}"), ("n", str(m["n"]))]
    if m.get("conditional_accuracy") is not None:
        kpis += [("conditional accuracy", f"{m['conditional_accuracy']:.3f}"),
                 ("class coverage", f"{m['class_coverage']:.2f}")]
    intro = (f"GAN, best checkpoint (epoch {summary.get('best_epoch', '?')}, lowest validation {fid}), EMA generator. "
             f"{html.escape(fid)} and {html.escape(kid)} use {html.escape(m['extractor'])}; they are computed between "
             f"n={m['n']} generated and n real images, and the floor is the same metric between two disjoint real "
             f"sets of n, since FID depends on n."
             + (f" Classes judged by {html.escape(str(m['classifier']))}." if m.get("classifier") else ""))
    parts = page_start(run, intro, kpis, curves)
    for warning in m.get("warnings", []):
        parts.append(f"<p style='color:#b91c1c'><b>Warning:</b> {html.escape(warning)}</p>")
    if m.get("per_class_accuracy"):
        cells = "".join(f"<tr><td>{html.escape(c)}</td><td>{a:.3f}</td></tr>" for c, a in m["per_class_accuracy"].items())
        parts.append(f"<h2>Conditional accuracy per requested class</h2><table><tr><th>class</th><th>judged as "
                     f"requested</th></tr>{cells}</table>")
    if gif:
        parts.append(f"<h2>Fixed noise over the epochs</h2><img src='{link(run, gif)}' alt='grids over epochs'>")
    parts.append(f"<h2>Samples of the best checkpoint</h2><img src='{link(run, evaluation.figures['samples'])}' "
                 f"alt='samples'>")
    return write_page(run, parts, evaluation.unreadable)  # and the images training skipped
