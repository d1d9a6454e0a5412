"""The style run's HTML report: loss curves and validation photos before and after, from best.ckpt."""

from __future__ import annotations

from pathlib import Path

import torch

from pixelforge.runs import folder as rd
from pixelforge.viz.html import link, page_start, write_page
from pixelforge.tasks.style.apply import STYLE_COPY
from pixelforge.viz.plots import plot_curves

CURVE_PANELS = (("perceptual loss", [("train_loss", "train"), ("val_loss", "val")]),
                ("val content / style", [("val_content", "content"), ("val_style", "style")]))


def write_examples(run, out: Path, count: int = 4) -> Path:
    """A strip of validation photos (top) and their stylized versions (bottom), square centre crops at the scale
    the network was trained at (`content_size`)."""
    from torchvision.utils import save_image

    from pixelforge.tasks.style.apply import stylize_tensor
    from pixelforge.tasks.style.task import ContentImages, content_split

    source = content_split(run.config)
    size = max(run.img_size, run.config.content_size) // 4 * 4
    images = ContentImages(source["val"][:count], size, train=False, scale=size)
    content = torch.stack([images[i] for i in range(len(images))])
    save_image(torch.cat([content, stylize_tensor(run.model, content)]), out, nrow=len(images), padding=2)
    return out


def write_style_thumbnail(style: Path, out: Path, side: int = 512) -> Path | None:
    """The run's copy of the style image (at most `side` px, 512: the --style-size training reads by default), so
    the report shows it and `stylize RUN` and `export` measure the style loss against it when the style file has
    been moved (apply.style_image_of). Read as training read it (`load_rgb`: `convert("RGB")` made a 16-bit style
    white, a transparent one black around it, a phone's photo sideways). None when the style file is gone."""
    from pixelforge.data.images import load_rgb
    from pixelforge.errors import PixelforgeError

    try:
        image = load_rgb(style)
    except PixelforgeError:
        return None
    image.thumbnail((side, side))
    image.save(out)
    return out


def write_style_report(run_dir: Path) -> Path:
    from pixelforge.tasks.style.apply import load_style_run

    run = load_style_run(run_dir)
    rows = rd.read_metrics(run_dir / "metrics.csv")
    summary = rd.read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {}
    curves = plot_curves(rows, run_dir / "curves.png", CURVE_PANELS) if rows else None
    best = summary.get("best_metric")
    cfg = run.config
    kpis = [("val perceptual loss", f"{best:.4f}" if best is not None else "–"),
            ("loss network", cfg.loss_net), ("size", f"{cfg.img_size} px")]
    parts = page_start(run_dir, f"Fast style transfer (Johnson et al.) with the style of <b>{Path(cfg.style).name}</b>, "
                                f"trained with content/style/TV weights {cfg.content_weight}/{cfg.style_weight}/"
                                f"{cfg.tv_weight} on {cfg.loss_net}'s feature maps. Lower losses are better.",
                       kpis, curves)
    examples = write_examples(run, run_dir / "examples.png")
    copy = run_dir / STYLE_COPY
    # Written once: a report regenerated after the style file was moved, or replaced, keeps what training read.
    style = copy if copy.is_file() else write_style_thumbnail(Path(cfg.style), copy)
    parts.append("<h2>Validation photos, before and after</h2>"
                 + (f"<p>The style image:</p><img src='{link(run_dir, style)}' alt='style image' "
                    "style='max-width:256px'>" if style else "")
                 + "<p>Top row: validation photos; bottom row: the same photos stylized.</p>"
                 f"<img src='{link(run_dir, examples)}' alt='examples'>")
    grid = run_dir / "comparison.png"  # written by benchmarks/style_transfer.py when it is given this run
    if grid.exists():
        parts.append(f"<h2>Gatys, fast and arbitrary side by side</h2><img src='{link(run_dir, grid)}' alt='grid'>")
    return write_page(run_dir, parts)
