"""The T1/T2 figures of benchmarks/tune_search read recorded trials correctly (no training: trial records made up)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.tune_search import t1_row, t2_row  # noqa: E402


def trials(values, epochs=3, pruned=()):
    return [{"number": i, "state": "PRUNED" if i in pruned else "COMPLETE", "value": None if i in pruned else v,
             "epochs": 1 if i in pruned else epochs} for i, v in enumerate(values)]


def test_t1_counts_the_first_tpe_trial_at_or_above_random_best():
    row = t1_row(0, 4, trials([0.5, 0.9, 0.95, 0.97]), trials([0.9, 0.7, 0.6, 0.8]))
    assert row["tpe_trials_to_reach"] == 2 and row["fraction"] == 0.5


def test_t1_counts_a_tpe_study_that_never_reaches_random_best_as_twice_the_budget():
    row = t1_row(0, 4, trials([0.5, 0.6, 0.7, 0.8]), trials([0.9, 0.1, 0.1, 0.1]))
    assert row["tpe_trials_to_reach"] is None and row["fraction"] == 2.0


def test_t2_compares_epochs_and_best_value_with_the_unpruned_study():
    row = t2_row(0, "median", trials([0.9, 0.95, 0.5, 0.4]), trials([0.9, 0.94, 0.5, 0.4], pruned=(2, 3)))
    assert row["epochs"] == 8 and row["epochs_unpruned"] == 12 and abs(row["saving"] - 1 / 3) < 1e-9
    assert abs(row["drop_points"] - 1.0) < 1e-9 and row["n_pruned"] == 2
