"""`pixelforge generate RUN`: new images from a trained generator (a GAN run), reproducible by seed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pixelforge.errors import PixelforgeError


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

    from pixelforge.deploy.runtime.package import is_package

    result = (_from_package(run, out, n, class_name, seed, truncation, interpolate) if is_package(run) else
              _from_run(run, out, n, class_name, seed, truncation, interpolate, seed_to))
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"{len(result['files'])} images in {result['out']}; grid: {result['grid']}")


def _from_run(run, out, n, class_name, seed, truncation, interpolate, seed_to) -> dict:
    from pixelforge.runs.files import run_task_name
    from pixelforge.tasks.registry import get_task

    task = get_task(run_task_name(run))
    if not hasattr(task, "generate"):
        raise PixelforgeError(f"{run}: a {task.name!r} run; generate needs a run of a generating task (--task gan)")
    return task.generate(run, out=out, n=n, class_name=class_name, seed=seed, truncation=truncation,
                         interpolate=interpolate, seed_to=seed_to)


def _from_package(package, out, n, class_name, seed, truncation, interpolate) -> dict:
    """The package's ONNX generator on numpy noise (deploy/runtime/gan.py): same seed, same images on any machine,
    though not the run's images for that seed (the run draws torch's noise)."""
    from pixelforge.deploy.runtime.package import package_task
    from pixelforge.deploy.runtime.registry import load_runtime

    if package_task(package) != "gan":
        raise PixelforgeError(f"{package}: a {package_task(package)!r} package; generate needs a GAN package")
    if interpolate:
        raise PixelforgeError(f"{package}: --interpolate needs the run folder (the package has no interpolation)")
    return load_runtime(package).generate_folder(out, n, class_name, seed, truncation)
