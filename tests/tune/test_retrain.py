"""`tune --retrain-best`: the best config trained on train+val, scored on the test split no trial saw; without a
test split, trained as the trials were and scored on the held-out split, saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import pixelforge
from pixelforge.runs import folder as rd

PER_SPLIT = {"train": 12, "val": 4, "test": 4}


def digits_csv(folder: Path, splits: tuple[str, ...]) -> Path:
    """Three digit classes from the built-in digits' own train/val/test folders, read in place through a CSV."""
    from pixelforge.data.builtin import materialize

    root = materialize("digits")
    lines = ["path,label,split"]
    for split in splits:
        for label in ("0", "1", "7"):
            files = sorted((root / split / label).glob("*.png"))[:PER_SPLIT[split]]
            lines += [f"{p},{label},{split}" for p in files]
    path = folder / f"digits-{'-'.join(splits)}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def tune_files(folder: Path, data: Path) -> tuple[Path, Path]:
    config, space = folder / "base.yaml", folder / "space.yaml"
    config.write_text(yaml.safe_dump({"data": str(data), "model": "simple_cnn", "weights": "none", "strategy": "full",
                                      "img_size": 16, "epochs": 2, "batch_size": 8, "precision": "32",
                                      "warmup_epochs": 0, "workers": 0, "calibrate": False, "quiet": True}))
    space.write_text("lr: [0.003, 0.01]\n")
    return config, space


@pytest.mark.slow
def test_retrain_best_trains_on_train_plus_val_and_scores_the_test_split(tmp_path):
    from pixelforge.cli import app

    config, space = tune_files(tmp_path, digits_csv(tmp_path, ("train", "val", "test")))
    out = tmp_path / "study"
    args = ["tune", "--config", str(config), "--space", str(space), "--sampler", "random", "--trials", "2",
            "--seed", "0", "--out", str(out), "--retrain-best", "--json"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    retrained = summary["retrained"]
    assert retrained["trained_on"] == "train+val" and retrained["scored_on"] == "test"
    run = out / "best-retrained"
    assert retrained["run"] == str(run) and (run / "checkpoints" / "best.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert saved["train_on_val"] is True and saved["lr"] == best["lr"]  # the best trial's config, plus val
    trial = rd.read_json(Path(summary_best_run(out)) / "summary.json")
    assert saved["epochs"] == trial["best_epoch"]  # as long as the best trial took to peak
    assert rd.read_json(run / "summary.json")["train_images"] == 3 * (PER_SPLIT["train"] + PER_SPLIT["val"])
    assert retrained["metrics"]["num_images"] == 3 * PER_SPLIT["test"]  # the test split, nothing else
    assert 0 <= retrained["metrics"]["accuracy"] <= 1

    # Alone on the finished study: no new trial, the finished retrain is scored again, not trained again.
    before = (run / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output[-2000:]
    second = json.loads(again.stdout.strip().splitlines()[-1])
    assert second["n_complete"] == 2 and second["retrained"]["metrics"] == retrained["metrics"]
    assert (run / "checkpoints" / "best.ckpt").stat().st_mtime_ns == before

    # Cut while it wrote its report (summary.json has no seconds_total yet): the same command finishes the report;
    # it was counted as retrained and never got one.
    (run / "report.html").unlink()
    rd.write_json(run / "summary.json", {k: v for k, v in rd.read_json(run / "summary.json").items()
                                         if k != "seconds_total"})
    assert CliRunner().invoke(app, args).exit_code == 0
    assert (run / "report.html").is_file() and (run / "checkpoints" / "best.ckpt").stat().st_mtime_ns == before


def summary_best_run(out: Path) -> str:
    import optuna

    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    return study.best_trial.user_attrs["run_dir"]


def test_without_a_test_split_it_scores_the_held_out_split_and_says_so(tmp_path):
    from pixelforge.tune.retrain import _plan
    from pixelforge.tasks.config import build_config

    config, _ = tune_files(tmp_path, digits_csv(tmp_path, ("train", "val")))
    plan = _plan(build_config(config), tmp_path)
    assert plan["trained_on"] == "train" and plan["scored_on"] is None and "no test split" in plan["why"]
    with pytest.raises(pixelforge.PixelforgeError, match="train_on_val needs a test split"):
        pixelforge.train(config=config, out=str(tmp_path / "run"), train_on_val=True)
    assert not (tmp_path / "run").exists()  # refused before a run folder exists


def test_a_task_that_cannot_train_on_val_is_scored_on_its_test_split_without_the_optimism_caveat(tmp_path):
    """segment with `test_fraction` retrained on train and was scored on test (its evaluation's held-out split), but
    the note said it was scored on the split that chose the hyper-parameters, "an optimistic score"."""
    from pixelforge.tune import retrain
    from tests.tasks.test_segmentation import write_tiny_masks

    data = write_tiny_masks(tmp_path / "masks", count=10, size=32)
    (tmp_path / "best.yaml").write_text(yaml.safe_dump({
        "task": "segment", "data": str(data), "arch": "unet", "weights": "none", "img_size": 32, "epochs": 1,
        "batch_size": 4, "strategy": "full", "test_fraction": 0.2, "quiet": True, "workers": 0}))
    retrained = retrain.retrain_best(tmp_path, tmp_path / "trials" / "0")
    assert retrained["trained_on"] == "train" and retrained["scored_on"] == "test", retrained
    assert "cannot train on its validation split" in retrained["note"] and "optimistic" not in retrained["note"]
    assert "scored on the test split, which no trial saw" in retrained["note"]
    assert "scored on the val split, which also chose" in retrain._note("the data has no test split", "val")


def test_retrain_best_of_a_task_without_evaluation_is_refused_before_the_study(cli, tmp_path):
    """`--task style` has no `evaluate`: the study ran, best-retrained/ trained, then the command failed with
    "evaluate: not available for task 'style'" and printed no summary."""
    (tmp_path / "photos").mkdir()
    config, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump({"task": "style", "data": str(tmp_path / "photos"),
                                      "style": str(tmp_path / "style.png")}))
    space.write_text("lr: [0.001, 0.01]\n")
    done = cli("tune", "--config", config, "--space", space, "--trials", "1", "--out", tmp_path / "study",
               "--retrain-best")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1 and "--retrain-best: task 'style' has no evaluation" in lines[0]
    assert not (tmp_path / "study").exists()


def test_the_note_of_an_evaluation_without_splits_names_no_held_out_split():
    """A GAN holds nothing out (FID compares with every real image): the note said "the held-out split"."""
    from pixelforge.tune.retrain import _note

    note = _note("task 'gan' cannot train on its validation split", None)
    assert "held-out" not in note and "scored as they were" in note and "optimistic" in note
    assert "scored on the val split, which also chose" in _note("the data has no test split", "val")
