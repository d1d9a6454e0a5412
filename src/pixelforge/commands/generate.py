"""`pixelforge generate RUN`: new images from a trained generator (a GAN run), reproducible by seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def generate_command(
    run: Path = typer.Argument(..., help="A GAN run folder (`pixelforge train --task gan`)."),
    out: Path = typer.Option(..., help="New folder for the PNGs and grid.png (never overwritten)."),
    n: int = typer.Option(64, help="How many images."),
    class_name: Optional[str] = typer.Option(None, "--class", help="Conditional runs: only this class (name or index)."),
    seed: int = typer.Option(0, help="Noise seed: the same seed gives the same images."),
    truncation: Optional[float] = typer.Option(None, help="Redraw noise values beyond +-T (e.g. 1.0): less variety, "
                                                          "cleaner images."),
    interpolate: Optional[int] = typer.Option(None, help="Instead: STEPS images between the noise of --seed and "
                                                         "--seed-to."),
    seed_to: Optional[int] = typer.Option(None, help="With --interpolate: the second seed (default seed + 1)."),
    as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """Generate images with a GAN run's EMA generator, or a GAN package's without torch: OUT/NNNN[_class].png and
    OUT/grid.png."""
    import json

    from pixelforge.api.generate import generate

    result = generate(run, out, n, class_name, seed, truncation, interpolate, seed_to)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{len(result['files'])} images in {result['out']}; grid: {result['grid']}")

