"""The pictures of a compression evaluation: the rate-distortion curves, and decoded crops beside JPEG and WebP at
(about) the same file size."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and servers have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from pixelforge.tasks.compress.classical import encode_classical  # noqa: E402
from pixelforge.metrics.image_quality import MS_SSIM_MIN_SIDE, psnr  # noqa: E402

STYLE = {"jpeg": ("JPEG (Pillow, q 5-95)", "tab:red"), "webp": ("WebP (Pillow, q 0-100)", "tab:green")}


def plot_rd_curve(curve: list[dict], classical: dict[str, list[dict]], path: Path) -> Path:
    """bpp vs PSNR and bpp vs MS-SSIM: every trained λ (mean over the images) against the classical sweeps."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB, RGB)"), (axes[1], "ms_ssim", "MS-SSIM")):
        for codec, rows in classical.items():
            pts = [(r["bpp"], r[key]) for r in rows if r[key] is not None]
            if pts:
                ax.plot(*zip(*pts), ".-", color=STYLE[codec][1], label=STYLE[codec][0], alpha=0.8)
        by_model: dict[str, list] = {}
        for s in curve:
            if s[key] is not None:
                steps = s.get("refine_steps")
                name = f"ours: {s['model']}" + (f", {steps} refinement steps" if steps else "")
                by_model.setdefault(name, []).append((s["bpp"], s[key], s["lambda"]))
        for name, pts in by_model.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", lw=2, label=name)
            for x, y, lam in pts:
                ax.annotate(f"λ={lam:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        top = max([s["bpp"] for s in curve] + [0.5]) * 1.6
        ax.set_xlim(0, top)
        visible = [r[key] for rows in classical.values() for r in rows if r[key] is not None and r["bpp"] <= top]
        visible += [s[key] for s in curve if s[key] is not None]
        if visible:
            ax.set_ylim(min(visible) - (0.5 if key == "psnr" else 0.01), max(visible) + (0.5 if key == "psnr" else 0.01))
        ax.axvline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_xlabel("bits per pixel (file size)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
        else:  # MS-SSIM of small images is None: an empty frame would read as a failed plot
            why = f"\n(MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} px a side)" if key == "ms_ssim" else ""
            ax.text(0.5, 0.5, f"{label}: n/a for every image{why}", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
    fig.suptitle("rate-distortion, mean over the evaluation images (up and left is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _closest_quality(pixels: np.ndarray, codec: str, rows: list[dict], nbytes: int) -> tuple[np.ndarray, int, int]:
    """The classical decode (from the image's sweep `rows`) whose file size is closest to `nbytes`."""
    quality = min(rows, key=lambda r: abs(r["bytes"] - nbytes))["quality"]
    data = encode_classical(pixels, codec, quality)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), quality, len(data)


def write_comparison(images: list[np.ndarray], files: list[Path], rows: list[dict], classical: dict, path: Path,
                     crop: int = 192, label: str = "ours") -> Path:
    """Centre crops of the first (up to) three images: original, ours, JPEG and WebP at about our file size."""
    picks = list(range(min(3, len(images))))
    fig, axes = plt.subplots(len(picks), 4, figsize=(13, 3.4 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        pixels, ours = images[i], rows[i]
        h, w = pixels.shape[:2]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        cut = (slice(top, top + crop), slice(left, left + crop))
        n_pixels = h * w
        panels = [(pixels, f"{Path(files[i]).name} (original)"),
                  (ours["decoded"], f"{label}: {ours['bpp']:.3f} bpp, {ours['psnr']:.2f} dB")]
        for codec in ("jpeg", "webp"):
            decoded, quality, nbytes = _closest_quality(pixels, codec, classical[codec][i], ours["bytes"])
            panels.append((decoded, f"{codec.upper()} q{quality}: {8 * nbytes / n_pixels:.3f} bpp, "
                                    f"{psnr(pixels, decoded):.2f} dB"))
        for ax, (image, title) in zip(axes[row], panels):
            ax.imshow(image[cut], interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
