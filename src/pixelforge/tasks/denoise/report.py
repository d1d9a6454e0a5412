"""The denoising run's HTML report: PSNR/SSIM of ours beside the noisy input and the classical denoisers, the
training curves, and the example crops (noisy / NL-means / wavelet / ours / clean with their PSNR)."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.viz.plots import plot_curves

REPORT_IMAGES = 6
CURVE_PANELS = (("loss (MSE)", [("train_loss", "train"), ("val_loss", "val")]), ("val PSNR (dB)", [("val_psnr", "val")]))


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def score_table(m: dict) -> str:
    rows = [("noisy input", m["psnr_noisy"], m["ssim_noisy"], m.get("ms_ssim_noisy"), None)]
    rows += [(name, b["psnr"], b["ssim"], b["ms_ssim"], b["seconds_per_image"]) for name, b in m["baselines"].items()]
    rows.append(("ours", m["psnr"], m["ssim"], m["ms_ssim"], m["seconds_per_image"]))
    cells = "".join(f"<tr><td>{html.escape(n)}</td><td>{_fmt(p, 2)}</td><td>{_fmt(s)}</td><td>{_fmt(ms)}</td>"
                    f"<td>{_fmt(t, 2)}</td></tr>" for n, p, s, ms, t in rows)
    return ("<table><tr><th>method</th><th>PSNR (dB)</th><th>SSIM</th><th>MS-SSIM</th><th>s / image</th></tr>"
            f"{cells}</table>")


def write_denoising_report(run: Path, evaluation=None) -> Path:
    """RUN/report.html from an evaluation (by default best.ckpt on the run's val split, whole images)."""
    limited = evaluation is None
    if limited:
        from pixelforge.tasks.denoise.evaluate import evaluate_denoising

        # The first REPORT_IMAGES val images: NL-means takes seconds per photo, `evaluate` scores them all.
        evaluation = evaluate_denoising(run, split="val", limit=REPORT_IMAGES)
    m = evaluation.metrics
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS) if rows else None
    best = max([m["psnr"]] + [b["psnr"] for b in m["baselines"].values()])
    kpis = [("PSNR", f"{m['psnr']:.2f} dB"), ("noisy", f"{m['psnr_noisy']:.2f} dB"),
            ("gain over best classical", _fmt(m["psnr"] - max([b["psnr"] for b in m["baselines"].values()] or [best]), 2)
             + " dB"), ("images", str(m["num_images"]))]
    scope = f"the <b>{html.escape(m['split'])}</b> split"
    total = summary.get("val_images")
    if limited and total and m["num_images"] < total:  # it read as if every val image had been scored
        scope = (f"the first {m['num_images']} of the {total} images of {scope} "
                 f"(<code>pixelforge evaluate</code> scores all)")
    parts = page_start(run, f"Denoising ({html.escape(str(m['noise']))}), evaluated on {scope} "
                            f"on whole images with the best checkpoint (epoch {summary.get('best_epoch', '?')})"
                            f"; the classical denoisers ran on the same noisy images.", kpis, curves)
    parts.append(f"<h2>Ours beside the classical denoisers</h2>{score_table(m)}")
    if "examples" in evaluation.figures:
        parts.append(f"<h2>Examples</h2><p>The same crop of each image: noisy, NL-means, wavelet, ours, clean; "
                     f"titles give each whole image's PSNR.</p><img src='{link(run, evaluation.figures['examples'])}' "
                     f"alt='examples'>")
    return write_page(run, parts, evaluation.unreadable)  # and the images training skipped
