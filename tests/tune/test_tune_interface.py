"""`pixelforge tune` used the way an unknown checker would: odd spaces, odd options, a reused --out. Each mistake is one
`error:` line before anything is written; a value the space names reaches the trial's config with the config's type.
The toy task trains in about a second."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from pixelforge.errors import PixelforgeError
from pixelforge.tune.study import TuneOptions, run_study
from tests.tune.toy import make_study_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy(tmp_path, toy_task):
    return make_study_files(tmp_path, epochs=1)


def load(out):
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.parametrize("option, message", [
    ({"trials": 0}, "--trials 0: give at least 1"),
    ({"trials": -2}, "--trials -2: give at least 1"),
    ({"timeout": 0}, "--timeout 0: give a number of seconds above 0"),
    ({"direction": "up"}, "--direction 'up': use max or min"),
    ({"sampler": "foo"}, "--sampler 'foo': use one of grid, random, tpe, cmaes"),
    ({"pruner": "foo"}, "--pruner 'foo': use one of none, median, hyperband"),
])
def test_a_bad_option_is_one_line_before_the_study_folder(toy, tmp_path, option, message):
    """--trials 0 or -2 made an empty study and exited 0; --direction up optimised `min` silently; a bad sampler
    or pruner name was refused after the study folder was made."""
    config, space = toy
    with pytest.raises(PixelforgeError, match="^" + message.replace("(", r"\(")):
        run_study(TuneOptions(config, space, tmp_path / "s", **option))
    assert not (tmp_path / "s").exists()


def test_an_out_that_is_a_file_is_one_line_and_the_file_is_kept(toy, tmp_path):
    config, space = toy
    out = tmp_path / "taken"
    out.write_text("mine")
    with pytest.raises(PixelforgeError, match="taken: --out is a file, not a study folder"):
        run_study(TuneOptions(config, space, out, trials=1))
    assert out.read_text() == "mine"


@pytest.mark.parametrize("key", ["data", "task", "out", "quiet"])
def test_keys_that_say_what_and_where_a_trial_trains_are_not_tunable(toy, tmp_path, key):
    """`data: [digits, shapes]` was accepted: trials on two datasets, compared as if on one."""
    config, space = toy
    space.write_text(f"{key}: [a, b]\n")
    with pytest.raises(PixelforgeError, match=f"space.yaml: {key}: not tunable"):
        run_study(TuneOptions(config, space, tmp_path / "s", trials=1))


def test_a_range_takes_the_config_key_s_type_whatever_its_bounds_look_like(toy, tmp_path):
    """`hidden: {low: 2.0, high: 8.0}` (an int key) drew 5.37, and every trial failed validation; `lr: {low: 0,
    high: 1}` (a float key) drew only 0 or 1. The key's type decides, as suggest_int/suggest_float would."""
    from pixelforge.tune.space import load_space

    config, space = toy
    space.write_text("hidden: {low: 2.0, high: 8.0}\nlr: {low: 0, high: 1}\nbatch_size: {low: 8, high: 16}\n")
    fitted = load_space(space, {"hidden": "int", "lr": "float", "batch_size": "int"})
    assert fitted["hidden"] == optuna.distributions.IntDistribution(2, 8)
    assert fitted["lr"] == optuna.distributions.FloatDistribution(0.0, 1.0)
    space.write_text("hidden: {low: 2, high: 8.5}\n")
    with pytest.raises(PixelforgeError, match=r"space.yaml: hidden: an integer key: give whole-number bounds"):
        load_space(space, {"hidden": "int"})


def test_int_ranges_stay_ints_in_each_trial_s_config_and_best_yaml(toy, tmp_path):
    config, space = toy
    space.write_text("hidden: {low: 2.0, high: 8.0}\nbatch_size: {low: 8, high: 16}\n")
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=0))
    assert summary["n_complete"] == 2 and summary["n_failed"] == 0
    assert all(type(v) is int for v in summary["best_params"].values())
    best = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    assert type(best["hidden"]) is int and type(best["batch_size"]) is int


@pytest.mark.parametrize("text, message", [
    ("lr: {low: true, high: 0.1}", r"lr: low must be a number, got True"),
    ("lr: {low: 0.001, high: 0.1, log: 'no'}", r"lr: log must be true or false, got 'no'"),
    ("lr: {low: 0.0, high: 0.1, log: true}", r"lr: .*low > 0"),
    ("lr: {low: 0.1, high: 0.01}", r"lr: .*low <= high"),
])
def test_malformed_ranges_are_one_line(toy, tmp_path, text, message):
    config, space = toy
    space.write_text(text + "\n")
    with pytest.raises(PixelforgeError, match="space.yaml: " + message):
        run_study(TuneOptions(config, space, tmp_path / "s", trials=1))
    assert not (tmp_path / "s").exists()


def test_a_null_choice_is_refused_rather_than_read_as_the_base_value(toy, tmp_path):
    """A trial's None meant "keep the base config's value": `grad_clip: [null, 1.0]` with a base grad_clip of 1.0
    trained the same config twice under two names."""
    config, space = toy
    space.write_text("grad_clip: [null, 1.0]\n")
    with pytest.raises(PixelforgeError, match="space.yaml: grad_clip: null cannot be a choice"):
        run_study(TuneOptions(config, space, tmp_path / "s", trials=1))


def test_choices_are_the_values_the_config_reads(toy, tmp_path):
    """`hidden: ['4', 8.0]` trained hidden 4 and 8 while the study and best_params said '4' and 8.0."""
    config, space = toy
    space.write_text("hidden: ['4', 8.0]\n")
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="grid"))
    assert sorted(t.params["hidden"] for t in load(tmp_path / "s").trials) == [4, 8]
    assert type(summary["best_params"]["hidden"]) is int
    space.write_text("hidden: ['4', 4]\n")
    with pytest.raises(PixelforgeError, match=r"space.yaml: hidden: the choices '4' and 4 are the same value"):
        run_study(TuneOptions(config, space, tmp_path / "t", sampler="grid"))


def test_a_study_folder_refuses_another_space_instead_of_mixing_them(toy, tmp_path):
    """Re-running with another space on the same --out added trials of the new space to the old study."""
    config, space = toy
    space.write_text("hidden: [4, 8]\n")
    run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=1, seed=0))
    space.write_text("lr: [0.01, 0.05]\n")
    with pytest.raises(PixelforgeError, match=r"study 's' searches hidden: \[4, 8\]; space.yaml searches lr: "
                                              r"\[0.01, 0.05\]: use the same --space, or another --out or --study"):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=0))
    assert len(load(tmp_path / "s").trials) == 1
    space.write_text("hidden: [4, 8]\n")  # the same space continues
    assert run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=0))["n_complete"] == 2


def test_a_misspelt_metric_does_not_lock_the_study_folder_to_it(toy, tmp_path):
    """--metric val_nope failed the first trial and stored val_nope (maximised) as the study's metric: the
    corrected command was refused with "study optimises val_nope"."""
    config, space = toy
    with pytest.raises(PixelforgeError, match="--metric val_nope: not in .*it has .*val_mae"):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=1, metric="val_nope"))
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=1))
    study = load(tmp_path / "s")  # made anew (val_nope was maximised, val_mae is minimised), the typo's run kept
    assert summary["n_complete"] == 1 and study.user_attrs["metric"] == "val_mae"
    assert study.direction == optuna.study.StudyDirection.MINIMIZE and (tmp_path / "s" / "trials" / "0").is_dir()
    assert study.trials[0].user_attrs["run_dir"] != str(tmp_path / "s" / "trials" / "0")


def test_cmaes_says_which_keys_it_draws_at_random(toy, tmp_path, caplog):
    """CMA-ES models numeric ranges only; with categorical keys Optuna falls back to random sampling for them,
    and a user comparing samplers was not told."""
    config, space = toy
    space.write_text("hidden: [4, 8]\nlr: {low: 0.001, high: 0.1, log: true}\n")
    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="cmaes", trials=1, seed=0))
    assert "--sampler cmaes: hidden is a list of choices, drawn at random" in caplog.text


def test_a_study_that_stops_on_failed_trials_still_prints_its_json_summary(toy, tmp_path):
    """The study's `error:` line came alone: with --json, nothing on stdout said how many trials failed."""
    config, space = toy
    done = subprocess.run([sys.executable, "-m", "tests.tune.toy", "tune", "--config", str(config), "--space",
                           str(space), "--sampler", "random", "--trials", "3", "--metric", "val_nope",
                           "--out", str(tmp_path / "s"), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: --metric val_nope")
    summary = json.loads(done.stdout)  # one JSON object, nothing else on stdout
    assert summary == {"best_value": None, "best_params": {}, "n_complete": 0, "n_pruned": 0, "n_failed": 1}


def test_a_study_folder_refuses_another_direction_instead_of_mixing_them(toy, tmp_path):
    """--direction max on a study made minimising went on silently: trial values taken as maxima, ranked as minima."""
    config, space = toy
    run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=1, seed=0))
    with pytest.raises(PixelforgeError, match="study 's' minimises val_mae; this worker asked to maximise val_mae"):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, direction="max"))
    assert len(load(tmp_path / "s").trials) == 1


def test_runs_compare_names_a_study_folder_without_trials_instead_of_skipping_it(tmp_path):
    """A study folder with no trial run folders (every trial refused, or a typo'd --out) was left out of the
    table without a word, beside the runs that were compared."""
    from pixelforge.tune.compare import expand

    run, study = tmp_path / "run", tmp_path / "study"
    run.mkdir()
    (run / "config.yaml").write_text("data: digits\n")
    (study / "trials").mkdir(parents=True)
    (study / "study.db").write_bytes(b"")
    with pytest.raises(PixelforgeError, match="study: a study folder without trial run folders"):
        expand([run, study])
    with pytest.raises(PixelforgeError, match="nope: neither a run folder"):
        expand([run, tmp_path / "nope"])


def test_a_storage_url_that_is_not_one_says_what_one_looks_like():
    """It said "--storage <url>: cannot open the study database (ArgumentError: Could not parse SQLAlchemy URL...)"."""
    from pixelforge.tune.storage import open_storage

    with pytest.raises(PixelforgeError, match=r"^--storage: not a database URL \(give postgresql://user:password@host/"
                                              r"db, or sqlite:////abs/path/study.db\)$"):
        open_storage("notaurl")


def test_a_postgresql_server_that_does_not_answer_fails_in_seconds(monkeypatch):
    """libpq waits for the kernel's TCP timeout (about two minutes on Linux) on a host that drops packets: a
    worker pointed at a wrong address hung before its one error line."""
    from pixelforge.tune import storage

    seen = {}
    monkeypatch.setattr(storage, "_rdb_storage", lambda url, kwargs, heartbeat: seen.update(kwargs) or "opened")
    assert storage.open_storage("postgresql://u:pw@db.example/optuna") == "opened"
    assert seen["connect_args"]["connect_timeout"] == storage.CONNECT_TIMEOUT_S <= 15


def test_a_nested_config_key_is_tuned_by_its_dotted_name(toy, tmp_path):
    """`augment_options.hflip` (a knob inside the augment_options mapping) was "not a config key": only whole
    mappings could be listed as choices. Each trial's config holds the drawn knob beside the base config's others."""
    config, space = toy
    config.write_text(config.read_text() + "augment_options: {vflip: true}\n")
    space.write_text("augment_options.hflip: [true, false]\naugment_options.rotate_degrees: {low: 0, high: 10}\n")
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=0))
    assert summary["n_complete"] == 2 and type(summary["best_params"]["augment_options.rotate_degrees"]) is float
    for trial in load(tmp_path / "s").trials:
        saved = yaml.safe_load((tmp_path / "s" / "trials" / str(trial.number) / "config.yaml").read_text())
        assert saved["augment_options"]["hflip"] == trial.params["augment_options.hflip"]
        assert saved["augment_options"]["rotate_degrees"] == trial.params["augment_options.rotate_degrees"]
        assert saved["augment_options"]["vflip"] is True
    best = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    assert best["augment_options"]["hflip"] == summary["best_params"]["augment_options.hflip"]
    space.write_text("augment_options.hflop: [true, false]\n")
    with pytest.raises(PixelforgeError, match=r"space.yaml: augment_options.hflop: not a key of augment_options; "
                                              r"did you mean 'hflip'"):
        run_study(TuneOptions(config, space, tmp_path / "t", trials=1))
    space.write_text("lr.low: [1, 2]\n")
    with pytest.raises(PixelforgeError, match=r"space.yaml: lr.low: lr is not a mapping of keys"):
        run_study(TuneOptions(config, space, tmp_path / "t", trials=1))


@pytest.mark.parametrize("text, hint", [
    ("augment_options: [{hflip: true}, {hflip: false}]", "name its knobs with a dot: augment_options.hflip"),
    ("augment_options: [[1, 2], [3]]", "set it in the base config"),
])
def test_a_mapping_or_list_as_a_choice_is_refused_before_the_study(toy, tmp_path, text, hint):
    """Optuna took such choices with a warning, the trials ran, then the report's parallel-coordinates plot failed
    with a traceback (`unhashable type: 'dict'`) after the whole study."""
    config, space = toy
    space.write_text(text + "\n")
    with pytest.raises(PixelforgeError, match="space.yaml: augment_options: a choice must be a number, a string, "
                                              "true/false; .*" + hint):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="grid"))
    assert not (tmp_path / "s").exists()
