"""`pixelforge tune`: hyper-parameter search over any task's config keys (pixelforge/tune/, on Optuna); the work is
`pixelforge.tune_study` (tune/api.py)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer


def tune(
    config: Path = typer.Option(..., help="Base training config (YAML, any task): what every trial starts from."),
    space: Path = typer.Option(..., help="Search space YAML: config key -> list (categorical) or {low, high, log, step}."),
    out: Path = typer.Option(Path("runs/study"), help="Study folder: study.db, trials/<n>/ run folders, report.html, best.yaml."),
    sampler: str = typer.Option("tpe", help="grid | random | tpe | cmaes (Optuna's samplers)."),
    trials: Optional[int] = typer.Option(None, help="Finished trials the study should hold, all workers together "
                                                    "(default 20; grid: the whole grid)."),
    timeout: Optional[float] = typer.Option(None, help="Start no new trial after this many seconds."),
    pruner: str = typer.Option("none", help="none | median | hyperband: stop poor trials after an epoch."),
    metric: Optional[str] = typer.Option(None, help="metrics.csv column to optimise (default: the task's monitor)."),
    direction: Optional[str] = typer.Option(None, help="max | min (default: the monitor's, else min for *loss*)."),
    storage: Optional[str] = typer.Option(None, help="Database URL (postgresql://user:pw@host/db) shared by workers; "
                                                     "default sqlite in --out."),
    study: Optional[str] = typer.Option(None, help="Study name in the storage (default: the --out folder's name)."),
    seed: Optional[int] = typer.Option(None, help="Sampler seed (reproducible proposals for one worker)."),
    devices: Optional[int] = typer.Option(None, help="Devices per trial (>1: DDP; pruning decided on rank 0)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs per trial (overrides the config; the pruners' budget)."),
    retrain_best: bool = typer.Option(False, "--retrain-best", help="Then train best.yaml on train+val in "
                                                                   "OUT/best-retrained and score the test split."),
    mlflow: Optional[str] = typer.Option(None, help="Log each finished trial to MLflow at this tracking URI, nested "
                                                    "under the study's run; a folder such as mlruns is MLflow's "
                                                    "local file store."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Search hyper-parameters with Optuna: every trial is a run folder; resumable; many workers on one storage."""
    import optuna

    from pixelforge.tune.api import tune_study

    logging.basicConfig(level=logging.WARNING if as_json else logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("lightning").propagate = False
    optuna.logging.set_verbosity(optuna.logging.WARNING if as_json else optuna.logging.INFO)
    keys = ("best_value", "best_params", "n_complete", "n_pruned", "n_failed", "retrained")
    try:
        summary = tune_study(config, space, out=out, sampler=sampler, trials=trials, timeout=timeout, pruner=pruner,
                             metric=metric, direction=direction, storage=storage, study=study, seed=seed,
                             devices=devices, epochs=epochs, retrain_best=retrain_best, mlflow=mlflow)
    except Exception as exc:
        # A study that stopped (failed trials, Ctrl-C) still has counts: under --json they go to stdout as the
        # one JSON object, the `error:` line to stderr, and the exit code says it stopped.
        stopped = getattr(exc, "summary", None)
        if as_json and stopped is not None:
            typer.echo(json.dumps({k: stopped[k] for k in keys if k in stopped}))
        raise
    if as_json:
        typer.echo(json.dumps({k: summary[k] for k in keys if k in summary}))
        return
    typer.echo(f"study {out}: {summary['n_complete']} complete, {summary['n_pruned']} pruned, {summary['n_failed']} "
               f"failed; best {summary['best_value']} with {summary['best_params']}")
    typer.echo(f"report: {out / 'report.html'}  best config: {out / 'best.yaml'}")
    if retrain_best:
        r = summary["retrained"]
        typer.echo(f"retrained on {r['trained_on']} ({r['epochs']} epochs) in {r['run']}, scored on {r['scored_on']}: "
                   + "  ".join(f"{k} {v:.4f}" for k, v in r["metrics"].items() if isinstance(v, float))
                   + (f"\nnote: {r['note']}" if r["note"] else ""))
