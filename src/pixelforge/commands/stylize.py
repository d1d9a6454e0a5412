"""`pixelforge stylize`: neural style transfer on one photo, by optimisation, a trained network, or arbitrary styles.

    pixelforge stylize CONTENT STYLE --out OUT.png                     Gatys et al. (L-BFGS on the image)
    pixelforge stylize CONTENT STYLE --out OUT.png --method arbitrary  Magenta's arbitrary network (STYLE: image or 0-25)
    pixelforge stylize RUN_OR_PACKAGE CONTENT --out OUT.png            a fast network (`train --task style`)

Every method reports the same numbers, measured with the same loss network (`--loss-net`): seconds of
stylization, content loss and style loss (tasks/style/methods.py). The work is in api/stylize.py
(`pixelforge.stylize`); this is its command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def stylize_command(
    first: str = typer.Argument(..., metavar="CONTENT_OR_RUN", help="Content photo; or a style run / package."),
    second: str = typer.Argument(..., metavar="STYLE_OR_CONTENT", help="Style image (arbitrary: also a built-in "
                                 "style 0-25 or a blend 3:0.5,12:0.5); or, after a run/package, the content photo."),
    out: Path = typer.Option(..., "--out", help="The stylized image: .png (lossless), .jpg, .webp, .bmp, .tif or .gif; "
                          "never overwritten."),
    method: str = typer.Option("auto", help="gatys | arbitrary | fast (auto: fast after a run/package, else gatys)."),
    size: int = typer.Option(512, min=0, help="The content's longer side in px (0: as it is)."),
    steps: int = typer.Option(300, min=1, help="gatys: loss evaluations (shared by the scales)."),
    optimizer: str = typer.Option("lbfgs", help="gatys: lbfgs | adam."),
    lr: float = typer.Option(0.02, help="gatys with adam: the learning rate (pixels in [0, 1])."),
    init: str = typer.Option("content", help="gatys: start from the content or from noise."),
    scales: int = typer.Option(2, min=1, max=5, help="gatys: coarse-to-fine scales, each twice the last."),
    content_weight: float = typer.Option(1.0, min=0.0, help="Weight of the content loss."),
    style_weight: float = typer.Option(10.0, min=0.0, help="Weight of the style (Gram) loss."),
    tv_weight: float = typer.Option(1e-2, min=0.0, help="Weight of the total-variation loss."),
    preserve_colour: bool = typer.Option(False, "--preserve-colour", help="gatys: transfer luminance only, keep the "
                                         "content's colours."),
    loss_net: str = typer.Option("tf_efficientnet_lite0", help="tf_efficientnet_lite0|1|2 (bundled) or vgg19 "
                                 "(needs --weights)."),
    weights: Optional[Path] = typer.Option(None, help="The loss network's state-dict file (vgg19: torchvision's)."),
    feature_transform: Optional[str] = typer.Option(None, help="none | softmax (SWAG: a softmax over each layer's "
                                                    "activations before the losses) | softmax-deep (the two deepest "
                                                    "style layers only). Default: a run's or package's "
                                                    "own; none for gatys and arbitrary."),
    seed: int = typer.Option(0, help="gatys: seed of the noise start."),
    as_json: bool = typer.Option(False, "--json", help="Print {seconds, content_loss, style_loss, loss_net, ...}."),
) -> None:
    """Stylize a photo: by optimisation (Gatys), with a trained fast network, or with an arbitrary style."""
    from pixelforge.api.stylize import stylize

    summary = stylize(first, second, out, method=method, size=size, steps=steps, optimizer=optimizer, lr=lr,
                      init=init, scales=scales, content_weight=content_weight, style_weight=style_weight,
                      tv_weight=tv_weight, preserve_colour=preserve_colour, loss_net=loss_net, weights=weights,
                      feature_transform=feature_transform, seed=seed, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        style_text = "–" if summary["style_loss"] is None else f"{summary['style_loss']:.4f}"
        typer.echo(f"{summary['method']}: {summary['seconds']:.2f} s, content loss {summary['content_loss']:.4f}, "
                   f"style loss {style_text} ({summary['loss_net']})  -> {out}")
