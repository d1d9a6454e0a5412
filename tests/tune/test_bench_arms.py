"""benchmarks/tune_search's T1/T2 arms: random search never shares TPE's sampler seed, and random-median is measured
against unpruned random search on the same configurations (no training: trial records made up)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.tune_search import sampler_seed, study_folder, t2_row  # noqa: E402


def trials(params, pruned=()):
    return [{"number": i, "state": "PRUNED" if i in pruned else "COMPLETE", "value": None if i in pruned else 0.9,
             "epochs": 1 if i in pruned else 3, "params": p} for i, p in enumerate(params)]


def test_random_search_samples_with_an_offset_seed_in_its_own_folder():
    assert sampler_seed("random", 3, 1000) == 1003 and sampler_seed("random-median", 3, 1000) == 1003
    assert sampler_seed("tpe", 3, 1000) == 3 and sampler_seed("median", 3, 1000) == 3  # TPE keeps the seed
    work = Path("w")
    assert study_folder(work, "random", 3, 1000).name == "random-offset1000-3"
    assert study_folder(work, "random-median", 3, 1000).name == "random-median-offset1000-3"
    assert study_folder(work, "random", 3, 0).name == "random-3"  # round five's studies keep their names
    assert study_folder(work, "median", 3, 1000).name == "tpe-median-3"


def test_t2_counts_the_trials_that_tried_the_unpruned_study_parameters():
    unpruned = trials([{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}])
    row = t2_row(0, "random-median", unpruned, trials([{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.5}], pruned=(2,)))
    assert row["same_params"] == 2 and row["sampler"] == "random" and row["pruner"] == "median"
    assert row["epochs"] == 7 and row["epochs_unpruned"] == 9
