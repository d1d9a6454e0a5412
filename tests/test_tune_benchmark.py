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


def test_val_unused_validates_on_the_left_out_training_images_never_on_test(tmp_path):
    from benchmarks.tune_search import prepare

    config, space = prepare(tmp_path, 314, 3, 32, space_text="lr: [0.01]\n", val_unused=True)
    rows = [line.split(",") for line in (tmp_path / "digits.csv").read_text().splitlines()[1:]]
    train = {path for path, _, split in rows if split == "train"}
    val = {path for path, _, split in rows if split == "val"}
    assert len(train) == 314 and len({p.split("/")[-2] for p in train}) == 10  # every class trained on
    assert not train & val and all("/test/" not in p for p in train | val)
    assert sum("/train/" in p for p in val) == 1257 - 314  # the left-out training images, beside the val split
    assert space.read_text() == "lr: [0.01]\n" and "digits.csv" in config.read_text()


def test_tpe_studies_of_another_setting_get_their_own_folder(tmp_path):
    from benchmarks.tune_search import study_folder

    # rounds 3-8's setting keeps its folder names, so their studies read as they are
    assert study_folder(tmp_path, "tpe", 100, 1000, (10, 24), 40).name == "tpe-100"
    assert study_folder(tmp_path, "tpe", 100, 1000, (5, 96), 40).name == "tpe-startup5-ei96-100"
    assert study_folder(tmp_path, "median", 3, 1000, (5, 24), 40).name == "tpe-median-startup5-ei24-3"
    assert study_folder(tmp_path, "random", 100, 1000, (5, 96), 40).name == "random-offset1000-100"


def test_a_report_over_several_seeds_reads_each_seeds_studies_of_the_setting(tmp_path):
    import optuna

    from benchmarks.tune_search import study_folder, t1_t2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in (0, 1):
        for arm, values in (("tpe", [0.2, 0.9, 0.5, 0.6]), ("random", [0.1, 0.8, 0.3, 0.2])):
            out = study_folder(tmp_path, arm, seed, 1000, (2, 8), 4)
            out.mkdir()
            study = optuna.create_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}",
                                        direction="maximize")
            for v in values:
                study.add_trial(optuna.trial.create_trial(value=v))
    rows = t1_t2(None, None, tmp_path, [0, 1], 4, ["tpe", "random"], train=False, random_offset=1000,
                 tpe_setting=(2, 8))
    assert [(r["seed"], r["tpe_trials_to_reach"]) for r in rows["T1"]] == [(0, 2), (1, 2)]


def test_a_study_deletes_each_trials_checkpoints_once_scored_unless_asked_to_keep_them(tmp_path, monkeypatch):
    from benchmarks.tune_search import prepare, run
    from pixelforge.tasks.classify import ClassifyTask

    # round nine's 1280 kept trial checkpoints (15 GB) filled the disk; the figures read only the metrics
    monkeypatch.setattr(ClassifyTask, "write_report", lambda self, run: None)
    monkeypatch.setattr(ClassifyTask, "write_card", lambda self, run, peak_memory=None: None)
    config, space = prepare(tmp_path, 20, 1, 16, space_text="lr: {low: 1.0e-3, high: 1.0e-2, log: true}\n")
    lean = run(config, space, tmp_path / "random-0", "random", "none", 0, 2)
    kept = run(config, space, tmp_path / "random-1", "random", "none", 1, 1, keep_checkpoints=True)
    assert len(lean) == 2 and len(kept) == 1 and all(t["value"] is not None for t in lean + kept)
    for n in (0, 1):
        trial = tmp_path / "random-0" / "trials" / str(n)
        assert (trial / "metrics.csv").exists() and not (trial / "checkpoints").exists()
    assert any((tmp_path / "random-1" / "trials" / "0" / "checkpoints").glob("*.ckpt"))
