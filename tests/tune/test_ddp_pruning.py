"""Pruning under DDP: two CPU processes (gloo), only rank 0 asks Optuna, every rank stops at the same epoch."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from pixelforge.runs import folder as rd
from pixelforge.tune.study import TuneOptions, run_study
from tests.tune.toy import make_study_files


@pytest.mark.slow
def test_pruning_works_under_two_process_ddp(tmp_path, toy_task):
    config, space = make_study_files(tmp_path, epochs=4)
    space.write_text("lr: [0.01]\n")
    # Prune every trial once it has reported 2 epochs: if a rank stopped alone, the other would hang in all-reduce.
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=1,
                                    pruner=optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=2),
                                    overrides={"devices": 2, "accelerator": "cpu"}))
    assert summary["n_pruned"] == 1
    trial = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}").trials[0]
    assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [1, 2]  # rank 0 reported once
    run = Path(trial.user_attrs["run_dir"])
    assert len(rd.read_metrics(run / "metrics.csv")) == 2
    assert rd.read_json(run / "summary.json")["stop_reason"].startswith("pruned by optuna at epoch 2")
