"""The run folder's metrics.csv: rows stay under their own columns when a resumed run logs other columns; and
outputs never overwrite what is there."""

import shutil
from pathlib import Path

import pytest

from pixelforge.errors import PixelforgeError
from pixelforge.runs.folder import append_metrics, evaluation_dir, new_file_path, output_path, read_metrics


def test_a_row_with_other_columns_rewrites_the_file_with_their_union(tmp_path):
    path = tmp_path / "metrics.csv"
    append_metrics(path, {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "val_map50": 0.1})
    append_metrics(path, {"epoch": 2, "train_loss": 1.0, "val_map50": 0.2, "images_per_s": 9.0})
    append_metrics(path, {"epoch": 3, "train_loss": 0.5, "val_map50": 0.3, "images_per_s": 8.0})
    rows = read_metrics(path)
    assert [r["val_map50"] for r in rows] == [0.1, 0.2, 0.3] and [r["train_loss"] for r in rows] == [2.0, 1.0, 0.5]
    assert [r["val_loss"] for r in rows] == [1.5, None, None] and rows[0]["images_per_s"] is None


def test_a_default_file_name_that_exists_gets_the_next_free_number(tmp_path):
    assert new_file_path(tmp_path / "lr_find.png") == tmp_path / "lr_find.png"
    (tmp_path / "lr_find.png").write_bytes(b"first")
    (tmp_path / "lr_find-2.png").write_bytes(b"second")
    assert new_file_path(tmp_path / "lr_find.png") == tmp_path / "lr_find-3.png"
    assert (tmp_path / "lr_find.png").read_bytes() == b"first"  # nothing is touched


def test_an_explicit_out_must_be_new_or_an_empty_folder_and_a_default_folder_is_numbered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert output_path(tmp_path / "empty", "explanations") == tmp_path / "empty"
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "a.png").write_bytes(b"x")
    (tmp_path / "plot.png").write_bytes(b"x")
    for taken in ("used", "plot.png"):
        with pytest.raises(PixelforgeError, match=f"{taken}: already exists; choose a new --out"):
            output_path(tmp_path / taken, "explanations")
    assert output_path(None, "explanations") == Path("explanations")
    Path("explanations").mkdir()
    assert output_path(None, "explanations") == Path("explanations-2")


def test_an_evaluation_rewrites_its_own_folder_and_keeps_another_s(tmp_path):
    run = tmp_path / "run"
    own = evaluation_dir(None, run / "eval-test", {"data": None, "split": "test"})
    (own / "metrics.json").write_text("{}")
    assert evaluation_dir(None, run / "eval-test", {"split": "test", "data": None}) == own  # same request, any order
    other = evaluation_dir(None, run / "eval-test", {"data": "/photos", "split": "test"})
    assert other == run / "eval-test-2" and (own / "metrics.json").is_file()
    legacy = run / "eval-val"  # written before evaluation.json existed: never taken over
    legacy.mkdir()
    assert evaluation_dir(None, legacy, {"data": None, "split": "val"}) == run / "eval-val-2"
    assert evaluation_dir(tmp_path / "mine", run / "eval-test", {}) == tmp_path / "mine"


def test_a_cut_checkpoint_points_to_the_other_one_only_when_it_is_there(tmp_path):
    """The hint named checkpoints/last.ckpt even when last.ckpt was the file cut off."""
    import torch

    from pixelforge.runs.folder import load_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"model": {}}, folder / "best.ckpt")
    (folder / "last.ckpt").write_bytes((folder / "best.ckpt").read_bytes()[:200])
    with pytest.raises(PixelforgeError, match=r"last\.ckpt: cannot read .* or use checkpoints/best\.ckpt beside it"):
        load_checkpoint(folder / "last.ckpt")
    (folder / "best.ckpt").unlink()
    with pytest.raises(PixelforgeError, match=r"truncated or corrupt \(.*\); copy it again$"):
        load_checkpoint(folder / "last.ckpt")


def test_a_run_killed_before_its_first_checkpoint_says_to_resume_it(tmp_path, tiny_run, shapes_dir):
    """kill -9 in the first epoch leaves config.yaml, classes.json and an empty checkpoints/ (was: "checkpoint not
    found; is this a pixelforge run folder?", which it is)."""
    import pixelforge

    run = tmp_path / "killed"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("config.yaml", "classes.json"):
        shutil.copy(tiny_run / name, run / name)
    image = next(p for p in sorted(shapes_dir.rglob("*")) if p.suffix == ".png")
    for call in (lambda: pixelforge.evaluate(run), lambda: pixelforge.predict(run, [image]),
                 lambda: pixelforge.export(run, out=tmp_path / "package")):
        with pytest.raises(PixelforgeError) as raised:
            call()
        assert str(raised.value) == (f"{run}: no checkpoint yet (its training stopped before saving one); resume it "
                                     f"with `pixelforge train --resume {run}`")
    assert not (tmp_path / "package").exists()


def test_a_run_stopped_in_its_first_epoch_is_evaluated_from_last_ckpt_and_says_so(tmp_path, tiny_run, caplog):
    """Only last.ckpt (Ctrl-C before the first epoch ended): evaluate, predict and export use it, and say so."""
    import logging

    import pixelforge
    from pixelforge.tasks.common.run import read_run

    run = tmp_path / "stopped"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "best.ckpt").unlink()
    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        pixelforge.evaluate(run)
        read_run(run, "classify")
    said = f"{run}: stopped before its first epoch ended, so it has no best.ckpt: using checkpoints/last.ckpt"
    assert caplog.text.count(said) == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        pixelforge.evaluate(tiny_run)  # a run with its best.ckpt says nothing
    assert "no best.ckpt" not in caplog.text
