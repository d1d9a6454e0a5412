"""`pixelforge runs compare`: a table of what differs between runs (or a study's trials) and their curves."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

WIDE = 12  # columns beyond which the table turns (rich squeezes more into unreadable "ar…" stubs at 160 columns)

runs_app = typer.Typer(no_args_is_help=True, help="Work with several run folders at once.")


@runs_app.command("compare")
def compare(
    paths: list[Path] = typer.Argument(..., help="Run folders and/or study folders (a study means all its trials)."),
    out: Optional[Path] = typer.Option(None, help="PNG of the overlaid training curves (default compare.png, or "
                                                  "compare-2.png... when it exists); never overwritten."),
    mlflow: Optional[str] = typer.Option(None, help="Also log the runs to MLflow at this tracking URI (a study's "
                                                    "trials nested under its run); a folder such as mlruns is "
                                                    "MLflow's local file store."),
) -> None:
    """Compare runs: config differences, best metric, epochs, time, images/s; curves overlaid in one PNG."""
    from rich.console import Console
    from rich.table import Table

    from pixelforge.runs.folder import output_path
    from pixelforge.tune.compare import expand, load, plot_curves, table, transposed

    out = output_path(out, "compare.png")
    rows = [load(run) for run in expand(paths)]
    header, body = table(rows)
    if len(header) > WIDE and len(body) < len(header):  # many settings differ: a column per run reads better
        header, body = transposed(header, body)
    grid = Table(*header)
    for row in body:
        grid.add_row(*row)
    Console(width=None if sys.stdout.isatty() else 160).print(grid)
    typer.echo(f"curves: {plot_curves(rows, out)}")
    if mlflow is not None:
        from pixelforge.tune.tracking import EXPERIMENT, log_runs, open_tracking

        client, experiment = open_tracking(mlflow or None)
        ids = log_runs(client, experiment, [r.run for r in rows])
        typer.echo(f"mlflow: {len(ids)} run(s) in experiment {EXPERIMENT!r} at {client.tracking_uri} (a run "
                   f"folder logged before is not logged twice)")
