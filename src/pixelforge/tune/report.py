"""The study's report: report.html with the trials table and Optuna's own plots (matplotlib backend), and
best.yaml, the best trial's config, which `pixelforge train --config best.yaml` reproduces."""

from __future__ import annotations

import html
import logging
import warnings
from pathlib import Path

import yaml
from optuna.trial import TrialState

from pixelforge.runs import folder as rd
from pixelforge.tune.storage import safe_url as _safe_url
from pixelforge.viz.html import link, page_start

log = logging.getLogger("pixelforge")
# fANOVA fits a random forest to the (parameters, value) pairs: with fewer complete trials its importances are noise,
# and drawing them imported scikit-learn and SciPy (~2.5 CPU-seconds in every worker that wrote the report).
IMPORTANCE_MIN_TRIALS = 10


def write_best_config(study, out: Path) -> Path | None:
    """The best trial's own config.yaml (every key resolved), without `out`, so training it again makes a new
    folder. Rewritten as the study improves: it is the study's current answer, not a user's file."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        return None
    run = Path(study.best_trial.user_attrs["run_dir"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    config.pop("out", None)
    config["quiet"] = False
    path = out / "best.yaml"
    header = f"# best trial {study.best_trial.number} of study {study.study_name} ({run}); value {study.best_value}\n"
    rd.atomic_write_bytes(path, lambda f: f.write((header + yaml.safe_dump(config, sort_keys=False)).encode()))
    return path


def _figures(study, out: Path, multi: bool) -> list[tuple[str, Path]]:
    """Optuna's plots, one PNG each; a plot that needs more trials than there are is left out (and said so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):  # Optuna would warn once a plot, with nothing drawn
        log.info("study report: no complete trial yet, so no plots")
        return []
    reported = any(t.intermediate_values for t in trials)  # only with a pruner
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    if complete < IMPORTANCE_MIN_TRIALS and not multi:
        log.info("study report: parameter importances left out (%d complete trials; they are drawn from %d)",
                 complete, IMPORTANCE_MIN_TRIALS)
    # Optuna calls the axis "Objective Value": the study's own metric and its direction say what it is.
    metric, direction = study.user_attrs.get("metric"), study.user_attrs.get("direction")
    target = {"target_name": f"{metric} ({'higher' if direction == 'max' else 'lower'} is better)"} if metric else {}
    plots = [("Pareto front", "pareto_front", lambda: ovm.plot_pareto_front(study))] if multi else [
        ("Optimisation history", "history", lambda: _whole_trials(ovm.plot_optimization_history(study, **target))),
        *([("Intermediate values (per epoch; pruned trials stop early)", "intermediate",
            lambda: ovm.plot_intermediate_values(study))] if reported else []),
        ("Parallel coordinates", "parallel", lambda: ovm.plot_parallel_coordinate(study, **target)),
        *([("Parameter importances (fANOVA)", "importances", lambda: ovm.plot_param_importances(study, **target))]
          if complete >= IMPORTANCE_MIN_TRIALS else []),
    ]
    written = []
    for title, name, plot in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning on every matplotlib plot
                ax = plot()
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            path = out / f"{name}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append((title, path))
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:  # too few trials for this plot
            log.info("study report: %s left out (%s)", title.lower(), exc)
            plt.close("all")
    return written


def _whole_trials(ax):
    """Trial numbers on the x axis are whole (0.25, 0.5... read as trials that never were)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def _run_link(out: Path, run_dir: str | None) -> str:
    """The trial's folder name, linked to its own report where it has one."""
    if not run_dir:
        return ""
    run = Path(run_dir)
    name = html.escape(run.name)
    if (run / "report.html").exists():
        try:
            return f"<a href='{link(out, run / 'report.html')}'>{name}</a>"
        except ValueError:  # a trial of another worker, in its own study folder elsewhere
            pass
    return name


def trials_table(study, out: Path) -> str:
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["#", "state", "value", *keys, "epochs", "seconds", "run"])
    rows = []
    for t in trials:
        value = ", ".join(f"{v:.4f}" for v in t.values) if t.values else ""
        state = "not run (study full)" if t.user_attrs.get("surplus") else t.state.name.lower()  # study.TrialSurplus
        cells = [str(t.number), state, value, *(_fmt(t.params.get(k, "")) for k in keys),
                 str(t.user_attrs.get("epochs_run", "")), _fmt(t.user_attrs.get("seconds", "")),
                 _run_link(out, t.user_attrs.get("run_dir"))]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c) if i < len(cells) - 1 else c}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(study, out: Path, summary: dict, url: str, extra: list[str] | None = None) -> Path:
    """out/report.html with the trials table and the plots; returns its path."""
    multi = len(study.directions) > 1
    metric = study.user_attrs.get("metric", "value")
    kpis = [("trials complete", str(summary["n_complete"])), ("pruned", str(summary["n_pruned"])),
            ("failed", str(summary["n_failed"]))]
    if summary.get("best_value") is not None:
        kpis.insert(0, (f"best {metric}", f"{summary['best_value']:.4f}"))
    intro = (f"Optuna study <b>{html.escape(study.study_name)}</b>: {len(study.get_trials(deepcopy=False))} trials. "
             "Each trial is a run folder under <code>trials/</code>. Dashboard: <code>optuna-dashboard "
             f"{html.escape(_safe_url(url))}</code>.")
    parts = page_start(out, intro, kpis, None) + (extra or [])
    for title, path in _figures(study, out, multi):
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{link(out, path)}' alt='{html.escape(title)}'>")
    parts.append("<h2>Trials</h2>" + trials_table(study, out))
    parts.append("</body></html>")
    path = out / "report.html"
    rd.atomic_write_bytes(path, lambda f: f.write("\n".join(parts).encode()))
    return path
