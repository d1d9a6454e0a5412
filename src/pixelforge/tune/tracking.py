"""Run folders logged to MLflow (`runs compare --mlflow`, `tune --mlflow`), for users who track experiments there.

One MLflow run per run folder: params = its config.yaml, metrics = every metrics.csv column per epoch (step =
epoch) plus summary.json's numbers, artifacts = its report, figures and small files (not checkpoints). A study's
trials are nested runs under one parent run for the study. A run folder already logged to the experiment (tag
`pixelforge.run_dir`) is not logged twice, so logging a study again, or after a resume, adds only what is new.

MLflow is an optional extra (`pip install "pixelforge[mlflow]"`); its local file store `./mlruns` is the default.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd

log = logging.getLogger("pixelforge")
DEFAULT_URI = "./mlruns"
EXPERIMENT = "pixelforge"
RUN_TAG, STUDY_TAG = "pixelforge.run_dir", "pixelforge.study"
_ARTIFACTS = ("config.yaml", "summary.json", "metrics.csv", "report.html", "model_card.md", "classes.json")
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


def open_tracking(uri: str | None = None, experiment: str = EXPERIMENT):
    """An `MlflowClient` on `uri` (a path or `file:` URI means MLflow's local file store) and the experiment's id."""
    try:
        import mlflow
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise PixelforgeError('--mlflow: MLflow is not installed; pip install "pixelforge[mlflow]"') from None
    uri = uri or DEFAULT_URI
    if "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).expanduser().resolve().as_uri()
    if uri.startswith("file:"):
        # MLflow 3 refuses its file store unless asked (it prefers a database); the issue and the no-server use
        # case want the plain folder, so ask for it here, for this process only.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=uri)
    try:
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    except mlflow.exceptions.MlflowException as exc:
        raise PixelforgeError(f"--mlflow {uri}: {str(exc).splitlines()[0]}") from None
    return client, experiment_id


def log_runs(client, experiment_id: str, runs: list[Path]) -> list[str]:
    """Log each run folder (a study's trials nested under the study's parent run); return their MLflow run ids."""
    ids = []
    for run in runs:
        study = run.parent.parent if run.parent.name == "trials" else None
        parent = study_run(client, experiment_id, study) if study is not None else None
        ids.append(log_run(client, experiment_id, run, parent))
    return ids


def study_run(client, experiment_id: str, study: Path) -> str:
    """The study's parent run: found by its tag, else created."""
    key = str(study.resolve())
    found = client.search_runs([experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{_quoted(key)}'",
                               max_results=1)
    if found:
        return found[0].info.run_id
    parent = client.create_run(experiment_id, run_name=study.name, tags={STUDY_TAG: key})
    client.set_terminated(parent.info.run_id)
    return parent.info.run_id


def log_run(client, experiment_id: str, run: Path, parent: str | None = None, tags: dict | None = None) -> str:
    """Log one run folder (once: an already logged folder returns its existing run id)."""
    from mlflow.entities import Metric, Param

    key = str(run.resolve())
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{_quoted(key)}'", max_results=1)
    if found:
        return found[0].info.run_id
    name = f"{run.parent.parent.name}/{run.name}" if run.parent.name == "trials" else run.name
    all_tags = {RUN_TAG: key, **({"mlflow.parentRunId": parent} if parent else {}), **(tags or {})}
    created = client.create_run(experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
    run_id = created.info.run_id
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    params = [Param(k, str(v)[:_MAX_PARAM]) for k, v in config.items() if k not in ("out", "quiet")]
    stamp = created.info.start_time
    metrics = [Metric(k, float(v), stamp, int(row["epoch"])) for row in rd.read_metrics(run / "metrics.csv")
               for k, v in row.items() if k != "epoch" and v is not None]
    summary = rd.read_json(run / "summary.json") if (run / "summary.json").exists() else {}
    metrics += [Metric(f"summary.{k}", float(v), stamp, 0) for k, v in summary.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for start in range(0, max(len(params), len(metrics)), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, metrics=metrics[start:start + 100], params=params[start:start + 100])
    for path in [run / f for f in _ARTIFACTS] + sorted(run.glob("*.png")):
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status="FINISHED" if summary else "KILLED")
    return run_id


def _quoted(text: str) -> str:
    return text.replace("'", "\\'")


class TrialLogger:
    """An Optuna callback (`study.optimize(callbacks=[...])`): each finished trial's run folder, logged as it ends,
    nested under the study's parent run, with the trial's number, state and value as tags."""

    def __init__(self, uri: str | None, study_dir: Path):
        self.client, self.experiment_id = open_tracking(uri)
        self.study_dir = study_dir
        self.parent = study_run(self.client, self.experiment_id, study_dir)

    def __call__(self, study, trial) -> None:
        run = Path(trial.user_attrs.get("run_dir", ""))
        if not (run / "config.yaml").exists():
            return  # the trial failed before its run folder existed: nothing to log
        try:
            log_run(self.client, self.experiment_id, run, self.parent,
                    {"optuna.trial": trial.number, "optuna.state": trial.state.name, "optuna.value": trial.value})
        except Exception as exc:  # noqa: BLE001  (tracking is a copy: a failing server must not stop the study)
            log.warning("mlflow: trial %d not logged (%s)", trial.number, str(exc).splitlines()[0])
