"""`pixelforge nas`: architecture search (NSGA-II on accuracy and latency) over MobileNet/EfficientNet-style nets;
the work is `pixelforge.nas` (tune/api.py)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer


def nas(
    config: Path = typer.Option(..., help="Base classify config (data, img_size, epochs per trial, ...)."),
    out: Path = typer.Option(Path("runs/nas"), help="Study folder: study.db, trials/<n>/ run folders, report.html."),
    trials: Optional[int] = typer.Option(20, help="Architectures to train, all workers together."),
    timeout: Optional[float] = typer.Option(None, help="Start no new trial after this many seconds."),
    latency: str = typer.Option("onnx", help="onnx: median ONNX Runtime ms at batch 1 on this machine | flops."),
    population: int = typer.Option(8, help="NSGA-II population (generation size)."),
    seed: Optional[int] = typer.Option(None, help="Sampler seed."),
    epochs: Optional[int] = typer.Option(None, help="Epochs per trial (overrides the config)."),
    storage: Optional[str] = typer.Option(None, help="Database URL shared by workers (default sqlite in --out)."),
    study: Optional[str] = typer.Option(None, help="Study name (default: the --out folder's name)."),
    as_json: bool = typer.Option(False, "--json", help="Print the Pareto front and hypervolume as JSON."),
) -> None:
    """Search architectures with NSGA-II: accuracy vs latency (or FLOPs); Pareto front plot, table, hypervolume."""
    import optuna

    from pixelforge.tune.api import nas as run_nas

    logging.basicConfig(level=logging.WARNING if as_json else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("lightning").propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING if as_json else optuna.logging.INFO)
    summary = run_nas(config, out=out, trials=trials, timeout=timeout, latency=latency, population=population,
                      seed=seed, epochs=epochs, storage=storage, study=study)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    for row in summary["pareto"]:
        typer.echo(f"trial {row['trial']:3d}  val_acc {row['val_acc']:.4f}  {row['latency_ms']} ms  "
                   f"{row['mflops']} MFLOPs  {row['params_m']} M params  {row['model']}")
    typer.echo(f"{len(summary['pareto'])} Pareto-optimal of {summary['n_complete']}; hypervolume "
               f"{summary['hypervolume']:.4g}; report: {out / 'report.html'}")
