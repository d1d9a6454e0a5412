"""`pixelforge data drift RUN NEW_DIR`: the drift check's command line (tasks/classify/drift.py does the work)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def drift_command(run: Path = typer.Argument(..., help="A trained classify run folder."),
                  new_dir: Path = typer.Argument(..., help="Folder of new images (any layout; labels not needed)."),
                  max_images: int = typer.Option(500, help="At most this many images a side (a seeded draw)."),
                  permutations: int = typer.Option(500, help="Permutations of the MMD test's p-value."),
                  seed: int = typer.Option(0, help="Seed of the draw and the permutations."),
                  as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """Compare new images with the run's training images in its backbone's feature space (MMD permutation test
    and a domain classifier's AUC) and say whether retraining is advised."""
    from pixelforge.tasks.classify.drift import drift_report, format_drift

    report = drift_report(run, new_dir, max_images=max_images, permutations=permutations, seed=seed)
    typer.echo(json.dumps(report) if as_json else format_drift(report))
