"""The compression run's HTML report after training: the best epoch's validation rate (bpp) and PSNR, and the
curves of the rate-distortion loss, the rate and the PSNR. The rate-distortion curve against JPEG and WebP (and
BD-rate) comes from `pixelforge evaluate RUN`, which codes every image at several qualities: too slow to run after
every training."""

from __future__ import annotations

import html
from pathlib import Path

from pixelforge.runs import folder as rd
from pixelforge.viz.html import page_start, write_page
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("loss (rate + \u03bb \u00b7 distortion)", [("train_loss", "train"), ("val_loss", "val")]),
                ("rate (bpp)", [("train_bpp", "train"), ("val_bpp", "val")]),
                ("val PSNR (dB)", [("val_psnr", "val")]))


def _shown(value, unit: str, digits: int) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f} {unit}"


def write_compression_report(run: Path) -> Path:
    """RUN/report.html from metrics.csv and summary.json (no evaluation: see the module docstring)."""
    rows = rd.read_metrics(run / "metrics.csv")
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    curves = plot_curves(rows, run / "curves.png", CURVE_PANELS) if rows else None
    best_epoch = summary.get("best_epoch")
    best = next((r for r in rows if r.get("epoch") == best_epoch), rows[-1] if rows else {})
    kpis = [("val rate", _shown(best.get("val_bpp"), "bpp", 4)), ("val PSNR", _shown(best.get("val_psnr"), "dB", 2)),
            ("val loss", _shown(best.get("val_loss"), "", 3))]
    command = html.escape(f"pixelforge evaluate {run}")
    parts = page_start(run, f"Learned image compression: the validation crops' rate (bits per pixel, lower is "
                            f"better) and PSNR (higher is better) at the best checkpoint (epoch "
                            f"{best_epoch if best_epoch is not None else '?'}). <code>{command}</code> codes whole "
                            f"images into .pfc files and draws the rate-distortion curve beside JPEG and WebP "
                            f"(with BD-rate).", kpis, curves)
    return write_page(run, parts)  # it lists the images training skipped (summary.json)
