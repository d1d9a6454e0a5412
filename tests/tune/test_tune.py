"""`pixelforge tune`: samplers over config keys, trials as run folders, pruning through the engine's StopTraining,
the study's report and best.yaml, and `runs compare` over a study's trials. The toy task trains in about a second."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState
from PIL import Image

import pixelforge
from pixelforge.errors import PixelforgeError
from pixelforge.runs import folder as rd
from pixelforge.tasks.config import build_config
from pixelforge.tune.study import TuneOptions, run_study
from tests.tune.toy import make_study_files

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy(tmp_path, toy_task):
    return make_study_files(tmp_path)


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")


@pytest.mark.slow
def test_cli_random_search_writes_the_study_folder_and_a_json_summary(tmp_path):
    config, space = make_study_files(tmp_path)
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "tests.tune.toy", "tune", "--config", str(config), "--space",
                           str(space), "--sampler", "random", "--trials", "3", "--seed", "1", "--out", str(out),
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary) == {"best_value", "best_params", "n_complete", "n_pruned", "n_failed"}
    assert summary["n_complete"] == 3 and summary["n_failed"] == 0
    study = load(out)  # study.db is an Optuna SQLite database
    assert summary["best_value"] == study.best_value == min(t.value for t in study.trials)  # val_mae: lower wins
    for trial in study.trials:  # each trial is a normal run folder trained with the trial's parameters
        run = out / "trials" / str(trial.number)
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert {k: saved[k] for k in trial.params} == trial.params
        assert (run / "checkpoints" / "best.ckpt").is_file() and rd.read_metrics(run / "metrics.csv")
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert {k: best[k] for k in summary["best_params"]} == summary["best_params"] and "out" not in best
    assert (out / "report.html").read_text().count("<tr>") == 4  # header + 3 trials
    assert (out / "history.png").stat().st_size > 10_000


@pytest.mark.parametrize("sampler", ["grid", pytest.param("tpe", marks=pytest.mark.slow)])
def test_grid_walks_every_point_and_tpe_runs(toy, tmp_path, sampler):
    config, space = toy
    space.write_text("lr: [0.01, 0.05]\nhidden: [8]\n" if sampler == "grid" else "lr: [0.01, 0.05]\nhidden: [4, 16]\n")
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler=sampler, trials=None if sampler == "grid"
                                    else 3, seed=0, overrides={"epochs": 2}))
    study = load(tmp_path / "s")
    points = {(t.params["lr"], t.params["hidden"]) for t in study.trials}
    if sampler == "grid":  # every point once, and the study ends there
        assert points == {(0.01, 8), (0.05, 8)} and summary["n_complete"] == len(study.trials) == 2
    else:
        assert summary["n_complete"] == len(study.trials) == 3
    run = pixelforge.train(config=tmp_path / "s" / "best.yaml", out=str(tmp_path / "again"), quiet=True)
    assert run.best_metric == pytest.approx(summary["best_value"], abs=1e-6)  # best.yaml reproduces the best trial


def test_pixelforge_tune_study_takes_the_command_s_options_as_keywords(toy, tmp_path):
    """`pixelforge.tune_study` is `pixelforge tune` (it had no public function): `epochs` fixes the key for every
    trial, a grid with no `trials` walks the whole grid, and the summary is the command's."""
    config, space = toy
    space.write_text("lr: [0.01, 0.05]\nhidden: [8]\n")
    summary = pixelforge.tune_study(config, space, out=tmp_path / "s", sampler="grid", epochs=1, seed=0)
    assert summary["n_complete"] == 2 and {"best_value", "best_params", "n_pruned", "n_failed"} <= set(summary)
    for trial in load(tmp_path / "s").trials:
        assert len(rd.read_metrics(Path(trial.user_attrs["run_dir"]) / "metrics.csv")) == 1  # 1 epoch, not 3


def test_a_pruned_trial_stops_early_and_leaves_a_valid_run_folder(toy, tmp_path):
    config, space = toy
    # Prune any trial whose val_mae after epoch 2 is above 0: every trial, at its second epoch.
    summary = run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=0,
                                    pruner=optuna.pruners.ThresholdPruner(upper=0.0, n_warmup_steps=2)))
    assert summary["n_pruned"] == 2 and summary["n_complete"] == 0
    for trial in load(tmp_path / "s").trials:
        assert trial.state == TrialState.PRUNED and sorted(trial.intermediate_values) == [1, 2]
        run = Path(trial.user_attrs["run_dir"])
        assert len(rd.read_metrics(run / "metrics.csv")) == 2  # stopped after 2 of 3 epochs
        assert rd.read_json(run / "summary.json")["stop_reason"].startswith("pruned by optuna at epoch 2")
        assert (run / "checkpoints" / "last.ckpt").is_file()
        scored = pixelforge.evaluate(run, data=str(config.parent / "gray"))  # a pruned trial is a normal run
        assert scored.metrics["num_images"] == 48


def _median_prunes_fourth_trial(budget: int | None) -> bool:
    """Three finished trials, then a fourth far below them at epoch 1: does `--pruner median` stop it?"""
    from pixelforge.tune.samplers import build_pruner

    study = optuna.create_study(direction="maximize", pruner=build_pruner("median", 4, budget))
    for curve in ([0.5, 0.8, 0.9, 0.95], [0.6, 0.85, 0.9, 0.93], [0.4, 0.7, 0.8, 0.9]):
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        study.tell(trial, max(curve))
    fourth = study.ask()
    fourth.report(0.1, 1)
    return fourth.should_prune()


def test_median_pruner_starts_judging_sooner_in_a_small_study():
    # A 40-trial study judges from its fourth trial and from epoch 1 (a twelfth of the budget finished first);
    # without a budget, Optuna's 5 startup trials: the same poor fourth trial runs on.
    assert _median_prunes_fourth_trial(40)
    assert not _median_prunes_fourth_trial(None) and not _median_prunes_fourth_trial(100)


def _tpe_draws(sampler, n: int = 14) -> list[tuple[float, float]]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", -5, 5) - 1) ** 2 + t.suggest_float("y", -5, 5) ** 2, n_trials=n)
    return [(t.params["x"], t.params["y"]) for t in study.trials]


def test_tpe_gets_the_startup_and_ei_candidates_it_is_given():
    # the benchmark compares TPE settings through build_sampler: each setting must reach Optuna's sampler
    from pixelforge.tune.samplers import TrialSeeded, build_sampler

    def tpe(startup, candidates):
        return TrialSeeded(lambda seed: optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, n_ei_candidates=candidates, multivariate=True, constant_liar=True), 0)

    draws = _tpe_draws(build_sampler("tpe", 0, startup=5, candidates=96))
    assert draws == _tpe_draws(tpe(5, 96))
    assert draws != _tpe_draws(tpe(5, 24)) and draws != _tpe_draws(tpe(10, 96))


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_seeded_study_continued_by_the_same_command_draws_new_parameters(toy, tmp_path, sampler):
    """A sampler made again with the same seed drew the same values: the continued study's first new trials
    repeated its first ones (after Ctrl-C, or here with a larger --trials)."""
    config, space = toy
    space.write_text("lr: {low: 1.0e-4, high: 0.1, log: true}\n")
    for trials in (2, 4):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler=sampler, trials=trials, seed=0,
                              overrides={"epochs": 1}))
    drawn = [t.params["lr"] for t in load(tmp_path / "s").trials]
    assert len(drawn) == 4 and len(set(drawn)) == 4


def test_an_interrupted_study_says_so_in_one_line_without_optunas_traceback(toy, tmp_path, monkeypatch, caplog):
    from pixelforge.tune import study as studies

    def interrupted(**options):  # Ctrl-C while the trial trains
        raise KeyboardInterrupt

    monkeypatch.setattr(studies, "train", interrupted)
    optuna_logger = logging.getLogger("optuna")  # it does not propagate to the root logger caplog listens on
    optuna_logger.addHandler(caplog.handler)
    config, space = toy
    try:
        with pytest.raises(PixelforgeError, match="^study interrupted; .* run the same command to continue$"):
            run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2))
    finally:
        optuna_logger.removeHandler(caplog.handler)
    assert "Trial 0 failed" not in caplog.text and not any(r.exc_info for r in caplog.records)
    assert [t.state for t in load(tmp_path / "s").trials] == [TrialState.FAIL, TrialState.WAITING]  # queued again


def test_a_sampler_object_is_used_as_it_is():
    # from Python, TuneOptions(sampler=...) takes any optuna sampler, as `pruner` takes any optuna pruner
    from pixelforge.tune.samplers import build_sampler

    sampler = optuna.samplers.RandomSampler(seed=0)
    assert build_sampler(sampler, seed=1) is sampler


def test_tpe_startup_is_a_quarter_of_a_small_budget():
    from pixelforge.tune.samplers import startup_trials

    assert [startup_trials(b) for b in (None, 100, 40, 20, 8)] == [10, 10, 10, 5, 3]


def test_space_and_metric_mistakes_are_one_line_errors(toy, tmp_path):
    config, space = toy
    space.write_text("hiden: [4, 16]\n")
    with pytest.raises(pixelforge.PixelforgeError, match="space.yaml: hiden"):
        run_study(TuneOptions(config, space, tmp_path / "a"))
    space.write_text("lr: {low: 0.1}\n")
    with pytest.raises(pixelforge.PixelforgeError, match=r"space.yaml: lr: give a list of choices or \{low, high"):
        run_study(TuneOptions(config, space, tmp_path / "b"))
    space.write_text("lr: {low: 0.001, high: 0.1, log: true}\n")
    with pytest.raises(pixelforge.PixelforgeError, match="--sampler grid needs a list or a range with a step"):
        run_study(TuneOptions(config, space, tmp_path / "c", sampler="grid"))


def test_runs_compare_tables_the_differences_and_overlays_the_curves(toy, tmp_path, cli):
    config, space = toy
    run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, seed=3,
                          overrides={"epochs": 2}))
    from pixelforge.tune.compare import expand, load as load_run, plot_curves, table

    rows = [load_run(r) for r in expand([tmp_path / "s"])]
    header, body = table(rows)
    differing = header[1:header.index("best")]
    assert "lr" in differing and not {"data", "epochs", "out"} & set(differing) and len(body) == 2
    assert all(row[header.index("best")].startswith("val_mae ") for row in body)
    png = plot_curves(rows, tmp_path / "curves.png")
    assert png.stat().st_size > 10_000


def test_runs_of_different_tasks_differ_in_the_settings_they_share(tmp_path):
    """A key only one task has is not a difference: comparing a detector with a classifier listed every task-specific
    key as a column, and rich squeezed 30 of them into unreadable stubs; a wide table turns a column per run."""
    import yaml

    from pixelforge.tune.compare import load as load_run, table, transposed

    for name, config in (("det", {"task": "detect", "lr": 0.002, "arch": "ssdlite", "anchor_sizes": [8]}),
                         ("cls", {"task": "classify", "lr": 0.01, "dropout": 0.2, "continual": "naive"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(yaml.safe_dump({"data": "shapes", **config}))
    header, body = table([load_run(tmp_path / "det"), load_run(tmp_path / "cls")])
    assert header[1:header.index("best")] == ["lr", "task"]
    turned, rows = transposed(header, body)
    assert turned == ["", "det", "cls"] and rows[0] == ["lr", "0.002", "0.01"] and rows[1] == ["task", "detect", "classify"]


def test_curves_of_runs_with_different_monitors_get_an_axis_each_and_a_gan_s_losses_are_drawn(tmp_path):
    """One axis held a classifier's val_acc (0-1) under a GAN's FID (~700), a flat line at 0; and the training-loss
    panel plotted only `train_loss`, which a GAN does not log (train_loss_d, train_loss_g): its panel was empty."""
    from pixelforge.tune.compare import RunRow, curve_panels, plot_curves

    def row(name, monitor, **columns):
        metrics = [{"epoch": e, monitor: 0.1 * e, **{k: v * e for k, v in columns.items()}} for e in (1, 2)]
        return RunRow(tmp_path / name, {}, {"monitor": monitor}, metrics)

    rows = [row("cls", "val_acc", train_loss=2.0), row("gan", "val_fid_lite0", train_loss_d=1.0, train_loss_g=3.0),
            row("seg", "val_miou", train_loss=1.0)]
    panels = dict(curve_panels(rows))
    assert [title for title in panels][:3] == ["validation: val_acc", "validation: val_fid_lite0",
                                               "validation: val_miou"]
    losses = panels["train_loss, train_loss_d, train_loss_g"]
    assert [(label, values) for label, _, values in losses] == [("cls", [2.0, 4.0]), ("gan d", [1.0, 2.0]),
                                                                ("gan g", [3.0, 6.0]), ("seg", [1.0, 2.0])]
    assert plot_curves(rows, tmp_path / "curves.png").stat().st_size > 10_000


def test_compared_curves_label_their_y_axes_with_the_metric_and_which_way_is_better(tmp_path, monkeypatch):
    from pixelforge.tune.compare import RunRow, plot_curves
    from pixelforge.viz import plots

    figures = []
    monkeypatch.setattr(plots.plt, "close", figures.append)
    metrics = [{"epoch": e, "val_fid_lite0": 300.0 / e, "train_loss": 2.0 / e} for e in (1, 2)]
    plot_curves([RunRow(tmp_path / "gan", {}, {"monitor": "val_fid_lite0"}, metrics)], tmp_path / "curves.png")
    fid, loss = figures[0].axes
    assert fid.get_ylabel() == "val_fid_lite0 (lower is better)" and loss.get_ylabel() == "train_loss (lower is better)"


def test_exponent_numbers_in_the_space_are_floats_not_strings(tmp_path):
    """YAML 1.1 reads `1e-3` as a string: it reached best_params (and the JSON summary) as text."""
    from pixelforge.tune.space import load_space

    space = tmp_path / "space.yaml"
    space.write_text("lr: [1e-3, 2E+2, 1.5e-3]\nname: ['1e-3']\n")
    loaded = load_space(space)
    assert loaded["lr"].choices == (0.001, 200.0, 0.0015)
    assert loaded["name"].choices == ("1e-3",)  # quoted stays text


def test_a_space_key_that_is_not_a_config_key_is_named_as_such(toy, tmp_path):
    """It said "hiden: 4 is not a valid value (base.yaml: ...)", blaming the value and the base config."""
    config, space = toy
    space.write_text("hiden: [4, 16]\n")
    with pytest.raises(PixelforgeError, match="space.yaml: hiden: not a config key of task 'toy-brightness'; "
                                               "did you mean 'hidden'") as error:
        run_study(TuneOptions(config, space, tmp_path / "a"))
    assert "valid value" not in str(error.value) and not (tmp_path / "a").exists()
    # With no close key, the line names the keys there are: the task's own first, then the shared ones.
    space.write_text("score_thresh: [0.3, 0.5]\n")
    with pytest.raises(PixelforgeError) as error:
        run_study(TuneOptions(config, space, tmp_path / "a"))
    own, shared = str(error.value).split("its own keys: ")[1].split("; shared keys: ")
    assert "hidden" in own.split(", ") and "lr" not in own.split(", ")
    assert {"lr", "batch_size", "epochs"} <= set(shared.rstrip(")").split(", ")) and "data" not in shared
    assert "\n" not in str(error.value)


def test_a_storage_that_cannot_be_opened_leaves_no_study_folder(tmp_path, toy_task):
    """--storage was opened after the study folder and its trials/ were made: a wrong URL left an empty study."""
    from pixelforge.tune.nas import NasOptions, run_nas

    config, space = make_study_files(tmp_path)
    url = f"sqlite:///{tmp_path / 'nowhere' / 'study.db'}"
    with pytest.raises(PixelforgeError, match="nowhere: folder for the study database does not exist"):
        run_study(TuneOptions(config, space, tmp_path / "s", sampler="random", trials=2, storage=url))
    classify = tmp_path / "classify.yaml"  # nas searches classifiers: the toy task's config is refused as such
    classify.write_text(yaml.safe_dump({"data": str(tmp_path / "gray"), "epochs": 1}))
    with pytest.raises(PixelforgeError, match="nowhere: folder for the study database does not exist"):
        run_nas(NasOptions(classify, tmp_path / "n", trials=2, storage=url))
    assert not (tmp_path / "s").exists() and not (tmp_path / "n").exists()


@pytest.mark.parametrize("keys, expected", [
    ({"task": "caption", "monitor": "loss"}, ("val_loss", "min")),  # was val_bleu4, max: not what chose best.ckpt
    ({"task": "caption"}, ("val_bleu4", "max")),
    ({"task": "gan", "fid_weights": "pt_inception.pth"}, ("val_fid_inception", "min")),  # was val_fid_lite0
    ({"task": "compress"}, ("val_loss", "min")),
])
def test_the_default_metric_is_the_monitor_this_config_trains_with(tmp_path, keys, expected):
    from pixelforge.tune.study import _metric

    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({"data": str(tmp_path), **keys}))
    assert _metric(TuneOptions(config, tmp_path / "space.yaml", tmp_path / "out"), build_config(config)) == expected


def test_what_train_refuses_before_a_run_folder_is_refused_before_the_study_folder(tmp_path):
    """A fewshot config (which trains nothing) or a space value a task refuses (gan's `strategy: linear`) made the
    study folder, failed three trials with Optuna's tracebacks, then stopped."""
    (tmp_path / "images" / "a").mkdir(parents=True)
    for i in range(8):
        Image.fromarray(np.full((16, 16), 30 * i, np.uint8)).save(tmp_path / "images" / "a" / f"{i}.png")
    space = tmp_path / "space.yaml"
    fewshot = tmp_path / "fewshot.yaml"
    fewshot.write_text(yaml.safe_dump({"task": "fewshot", "data": str(tmp_path / "images")}))
    space.write_text("lr: [0.001, 0.01]\n")
    with pytest.raises(PixelforgeError, match="fewshot.yaml: --task fewshot trains nothing"):
        run_study(TuneOptions(fewshot, space, tmp_path / "a"))
    gan = tmp_path / "gan.yaml"
    gan.write_text(yaml.safe_dump({"task": "gan", "data": str(tmp_path / "images")}))
    space.write_text("strategy: [full, linear]\n")
    with pytest.raises(PixelforgeError, match="space.yaml: strategy: 'linear' is not a valid value .*does not read"):
        run_study(TuneOptions(gan, space, tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_failed_trial_is_logged_in_one_line_without_a_traceback():
    """Optuna logs a failed trial's exception with its traceback: pixelforge's frames, for the user's parameters."""
    from pixelforge.tune.study import TrialFailed, _quiet_surplus

    try:
        raise TrialFailed("--lr 5: too high")
    except TrialFailed:
        record = logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1,
                                   "Trial 0 failed with parameters: {'lr': 5} because of the following error: "
                                   "TrialFailed('--lr 5: too high').", None, sys.exc_info())
    assert _quiet_surplus.filter(record) and record.exc_info is None
    assert "Traceback" not in logging.Formatter().format(record)
    # A user's mistake (`--metric` not logged) stops the study with its own `error:` line: Optuna's two lines (one
    # with a traceback) only repeated it.
    try:
        raise PixelforgeError("--metric val_dice: not in metrics.csv")
    except PixelforgeError:
        first = logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1, "Trial 7 failed with "
                                  "parameters: {} because of the following error: ...", None, sys.exc_info())
    last = logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1, "Trial 7 failed with value None.",
                             None, None)
    assert not _quiet_surplus.filter(first) and not _quiet_surplus.filter(last)


def test_a_study_without_a_complete_trial_draws_no_empty_plots(tmp_path):
    """Every trial failed: Optuna warned "no complete trials" once a plot and the report showed empty axes."""
    from pixelforge.tune.report import _figures

    study = optuna.create_study()
    study.tell(study.ask(), state=TrialState.FAIL)
    assert _figures(study, tmp_path, multi=False) == [] and not list(tmp_path.glob("*.png"))


def _task_data(task: str, root: Path) -> dict:
    """A tiny dataset for `task` (the tasks' own test helpers) and the keys its config needs besides `data`."""
    from tests.tasks.test_detection import write_tiny_coco
    from tests.tasks.test_instance import write_tiny_instance
    from tests.tasks.test_segmentation import write_tiny_masks

    photos = root / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), np.uint8)).save(photos / f"{i}.png")
    from pixelforge.data.captions.shapes import write_shapes_captions

    def captions():
        write_shapes_captions(root / "captions", seed=3, splits=(("train", 8), ("val", 4)))
        return root / "captions"

    makers = {"detect": lambda: write_tiny_coco(root / "coco"), "segment": lambda: write_tiny_masks(root / "masks"),
              "instance": lambda: write_tiny_instance(root / "inst"), "caption": captions, "clip": captions,
              "style": lambda: photos}
    extra = {"style": {"style": str(photos / "0.png")}}
    return {"data": str(makers.get(task, lambda: photos)()), **extra.get(task, {})}


# Each task's own key beside lr: the space tune checks before its study folder (config, data, each value).
TASK_KEYS = {"detect": "min_size: {low: 48, high: 64}", "segment": "loss: [ce, dice]",
             "instance": "min_size: [48, 64]", "denoise": "noise: ['gaussian:15', 'gaussian:25']",
             "compress": "lambda_: {low: 0.005, high: 0.05, log: true}", "gan": "lr_d: {low: 1.0e-4, high: 1.0e-3}",
             "style": "residual_blocks: {low: 1, high: 2}", "caption": "word_dropout: [0.0, 0.2]",
             "clip": "text_layers: {low: 1, high: 2}"}


@pytest.mark.parametrize("task", sorted(TASK_KEYS))
def test_any_task_s_config_and_own_keys_pass_tune_s_checks_with_its_monitor(task, tmp_path):
    """Anything trainable is tunable: every task's config, with a key of its own, passes the checks that run before
    the study folder, and the study optimises the task's monitor in its direction."""
    from pixelforge.tasks.registry import get_task
    from pixelforge.tune.space_check import check_space
    from pixelforge.tune.study import _metric

    config, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump({"task": task, **_task_data(task, tmp_path)}))
    space.write_text(f"lr: {{low: 1.0e-4, high: 1.0e-2, log: true}}\n{TASK_KEYS[task]}\n")
    opts = TuneOptions(config, space, tmp_path / "study")
    base, _ = check_space(config, space)
    task_class = get_task(task)
    assert _metric(opts, base) == (task_class.monitor, task_class.monitor_mode)
    assert not opts.out.exists()


def test_the_history_plot_names_the_metric_and_its_direction_and_counts_whole_trials(tmp_path, monkeypatch):
    import optuna

    from pixelforge.tune import report
    from pixelforge.viz import plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("metric", "val_acc")
    study.set_user_attr("direction", "max")
    for value in (0.5, 1.0, 0.5):
        study.add_trial(optuna.trial.create_trial(params={"lr": value / 10},
                                                  distributions={"lr": optuna.distributions.FloatDistribution(0.01, 0.2)},
                                                  value=value))
    figures = []
    monkeypatch.setattr(plots.plt, "close", lambda figure=None: figures.append(figure))
    written = dict(report._figures(study, tmp_path, multi=False))
    history = figures[0].axes[0]
    assert "Optimisation history" in written and "val_acc (higher is better)" in history.get_ylabel()
    ticks = [t for t in history.get_xticks() if history.get_xlim()[0] <= t <= history.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_parameter_importances_are_drawn_from_ten_complete_trials_and_left_out_below(tmp_path):
    """fANOVA's importances from a handful of trials are a random forest's noise, and drawing them imported
    scikit-learn in every worker that wrote the report: below 10 complete trials the plot is left out."""
    from pixelforge.tune.report import IMPORTANCE_MIN_TRIALS, _figures

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    distributions = {"lr": optuna.distributions.FloatDistribution(0.001, 0.1),
                     "hidden": optuna.distributions.IntDistribution(2, 32)}
    for i in range(IMPORTANCE_MIN_TRIALS):
        if i == IMPORTANCE_MIN_TRIALS - 1:
            titles = [title for title, _ in _figures(study, tmp_path, multi=False)]
            assert not any("importances" in t for t in titles) and "Optimisation history" in titles
            assert not (tmp_path / "importances.png").exists()
        study.add_trial(optuna.trial.create_trial(params={"lr": 0.001 + 0.01 * i, "hidden": 2 + 3 * i},
                                                  distributions=distributions, value=float(i % 4)))
    titles = [title for title, _ in _figures(study, tmp_path, multi=False)]
    assert "Parameter importances (fANOVA)" in titles and (tmp_path / "importances.png").stat().st_size > 10_000


def test_after_the_first_trial_the_collection_walks_only_what_later_trials_made(monkeypatch):
    """Optuna's gc after each trial walked every object of the process (0.25 CPU-s a trial with torch loaded): what is
    alive after the first trial is frozen for the study, a later trial's reference cycles are still collected after
    it, and the process is unfrozen at the end; a caller's own freeze is left as it is."""
    import gc
    import weakref

    from pixelforge.tune.study import optimize

    class Node:
        pass

    frozen, cycles = [], []

    def objective(trial):
        frozen.append(gc.get_freeze_count())
        node = Node()
        node.me = node  # a cycle only the collector frees (a model and its optimizer hold each other alike)
        cycles.append(weakref.ref(node))
        return trial.suggest_float("x", 0, 1)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize(optuna.create_study(), objective, target=3, timeout=None)
    assert frozen[0] == 0 and frozen[1] > 0 and frozen[2] > 0
    assert all(ref() is None for ref in cycles)  # each trial's cycle collected after its trial, frozen or not
    assert gc.get_freeze_count() == 0

    gc.freeze()  # a caller's own freeze is not undone
    try:
        optimize(optuna.create_study(), objective, target=2, timeout=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
