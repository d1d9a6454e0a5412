"""`--mlflow`: run folders and a study's trials logged to MLflow's local file store, read back with MlflowClient:
one run per folder, params = its config, per-epoch metric histories, trials nested under the study's run."""

from __future__ import annotations

import pytest

from pixelforge.runs import folder as rd
from pixelforge.tune.study import TuneOptions, run_study
from tests.tune.toy import make_study_files


def test_tune_logs_each_trial_nested_and_runs_compare_adds_only_new_runs(tmp_path, toy_task):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra (pip install 'pixelforge[mlflow]')")
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from pixelforge.cli import app

    from pixelforge.tune.tracking import EXPERIMENT, RUN_TAG, open_tracking

    config, space = make_study_files(tmp_path, epochs=2)
    store = tmp_path / "mlruns"
    out = tmp_path / "study"
    run_study(TuneOptions(config, space, out, sampler="random", trials=2, seed=0, mlflow=str(store)))

    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_name == "study" and len(trials) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    for run in trials:
        folder = out / "trials" / run.data.tags["optuna.trial"]
        assert run.data.tags[RUN_TAG] == str(folder.resolve())
        saved = rd.read_json(folder / "summary.json")
        assert float(run.data.params["lr"]) == pytest.approx(float(_config(folder)["lr"]))
        history = client.get_metric_history(run.info.run_id, "val_mae")
        rows = rd.read_metrics(folder / "metrics.csv")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
            [(int(r["epoch"]), pytest.approx(r["val_mae"])) for r in rows]  # the per-epoch history, step = epoch
        assert run.data.metrics["summary.best_metric"] == pytest.approx(saved["best_metric"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "metrics.csv", "summary.json"} <= artifacts

    # runs compare --mlflow: the study's trials are already there (not logged twice); a plain run is added.
    import pixelforge

    plain = pixelforge.train(config=config, out=str(tmp_path / "plain"), epochs=1, quiet=True).run_dir
    done = CliRunner().invoke(app, ["runs", "compare", str(out), str(plain), "--out", str(tmp_path / "c.png"),
                                    "--mlflow", str(store)])
    assert done.exit_code == 0, done.output[-2000:]
    runs = client.search_runs([experiment])
    assert len(runs) == 4 and sum(r.data.tags.get(RUN_TAG) == str(plain.resolve()) for r in runs) == 1
    assert open_tracking(str(store))[1] == experiment


def test_without_mlflow_installed_the_error_is_one_line(monkeypatch):
    import sys

    import pixelforge
    from pixelforge.tune.tracking import open_tracking

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with pytest.raises(pixelforge.PixelforgeError, match=r'MLflow is not installed; pip install "pixelforge\[mlflow\]"'):
        open_tracking("mlruns")


def _config(folder):
    import yaml

    return yaml.safe_load((folder / "config.yaml").read_text())
