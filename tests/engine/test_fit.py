"""`fit` hosts any task: a GAN with two named optimizers and its own state resumes bit for bit, a "min" monitor picks
best.ckpt, hooks can stop training cleanly, and a fit leaves the process as it found it."""

from __future__ import annotations

import logging
import signal
from functools import partial

import pytest
import torch

from pixelforge.runs import folder as rd
from pixelforge.engine.fit import FitConfig, fit
from pixelforge.engine.hooks import Hook, StopTraining
from pixelforge.engine.process_state import flush_denormal_enabled
from pixelforge.errors import PixelforgeError
from tests.engine.point_gan import build_point_gan

CONFIG = FitConfig(epochs=3, batch_size=32, lr=2e-3, seed=0, accelerator="cpu", quiet=True)
TIMING = ("images_per_s", "epoch_seconds")


def _rows(run):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rd.read_metrics(run / "metrics.csv")]


class InterruptAt(Hook):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == self.step:
            raise KeyboardInterrupt


class StopAt(Hook):
    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == self.step:
            raise StopTraining(f"enough at step {self.step}")

    def on_validation_end(self, ctx, metrics):
        if metrics["epoch"] == self.epoch:
            raise StopTraining("enough epochs")


class Recorder(Hook):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, ctx):
        self.calls.append("fit_start")

    def on_epoch_start(self, ctx):
        self.calls.append(f"epoch_start {ctx.state.epoch}")

    def on_train_batch_end(self, ctx, outputs):
        assert set(outputs) >= {"loss_d", "loss_g", "count"} and ctx.run_dir.is_dir()

    def on_validation_end(self, ctx, metrics):
        self.calls.append(f"validation_end {metrics['epoch']}")

    def on_fit_end(self, ctx):
        self.calls.append("fit_end")


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    run = rd.new_run_dir(tmp_path_factory.mktemp("gan") / "straight")
    recorder = Recorder()
    result = fit(build_point_gan, run, CONFIG, hooks=[recorder])
    return run, result, recorder


def test_a_gan_trains_with_named_optimizers_and_hooks_see_every_event(straight):
    run, result, recorder = straight
    assert recorder.calls == ["fit_start", "epoch_start 0", "validation_end 1", "epoch_start 1", "validation_end 2",
                              "epoch_start 2", "validation_end 3", "fit_end"]
    saved = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert set(saved["optimizers"]) == set(saved["schedulers"]) == {"generator", "discriminator"}
    assert saved["schedulers"]["generator"] is None and saved["schedulers"]["discriminator"]["last_epoch"] == 24
    assert set(saved["task_state"]["ema"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert result.epochs_run == 3 and not result.stopped_early


def test_every_scalar_a_step_returns_is_logged_as_a_train_column(straight):
    run, _, _ = straight
    rows = rd.read_metrics(run / "metrics.csv")
    assert list(rows[0]) == ["epoch", "train_loss_d", "train_loss_g", "train_d_real", "train_one", "val_wd",
                             "lr_generator", "lr_discriminator", "images_per_s", "epoch_seconds"]
    assert all(row["train_one"] == 1.0 and 0 < row["train_d_real"] < 1 for row in rows)
    assert rows[-1]["lr_discriminator"] < rows[0]["lr_discriminator"] < rows[0]["lr_generator"] == 2e-3


def test_best_checkpoint_follows_a_min_monitor(straight):
    run, result, _ = straight
    rows = rd.read_metrics(run / "metrics.csv")
    best = min(rows, key=lambda r: r["val_wd"])
    assert result.monitor_mode == "min" and result.best_epoch == best["epoch"]
    assert abs(result.best_metric - best["val_wd"]) < 1e-6
    assert rd.load_checkpoint(run / "checkpoints" / "best.ckpt")["loop"]["best_epoch"] == best["epoch"]


def test_interrupted_and_resumed_gan_is_bit_identical_to_an_uninterrupted_one(straight, tmp_path):
    run, _, _ = straight
    cut = rd.new_run_dir(tmp_path / "cut")
    with pytest.raises(PixelforgeError, match="resume with"):
        fit(build_point_gan, cut, CONFIG, hooks=[InterruptAt(11)])  # 8 steps an epoch: mid-way through epoch 2
    saved = rd.load_checkpoint(cut / "checkpoints" / "last.ckpt")
    assert (saved["loop"]["epoch"], saved["loop"]["batch"]) == (1, 3)
    fit(build_point_gan, cut, CONFIG, resume=True)

    expected, got = (rd.load_checkpoint(r / "checkpoints" / "last.ckpt") for r in (run, cut))
    for key, tensor in expected["model"].items():
        assert torch.equal(tensor, got["model"][key]), key
    for key, tensor in expected["task_state"]["ema"].items():
        assert torch.equal(tensor, got["task_state"]["ema"][key]), key
    for name in ("generator", "discriminator"):
        for index, state in expected["optimizers"][name]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, got["optimizers"][name]["state"][index][key]), (name, key)
    assert _rows(cut) == _rows(run)


def test_augmentations_in_dataloader_workers_resume_bit_for_bit(straight, tmp_path):
    """Persistent workers' RNG streams go on across epochs and are in no checkpoint: a resumed run's new workers drew
    other augmentations (classification uses workers on machines with more than 4 cores)."""
    build = partial(build_point_gan, workers=2)
    runs = [rd.new_run_dir(tmp_path / name) for name in ("straight", "cut")]
    fit(build, runs[0], CONFIG)
    with pytest.raises(PixelforgeError, match="resume with"):
        fit(build, runs[1], CONFIG, hooks=[InterruptAt(11)])  # mid-way through epoch 2
    fit(build, runs[1], CONFIG, resume=True)
    expected, got = (rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["model"] for run in runs)
    assert all(torch.equal(tensor, got[key]) for key, tensor in expected.items())
    assert _rows(runs[1]) == _rows(runs[0]) != _rows(straight[0])  # the jitter was drawn


def test_a_resume_removes_a_checkpoint_write_cut_by_kill_9(straight, tmp_path):
    """kill -9 while last.ckpt was written left its temporary file, as large as a checkpoint, for good."""
    cut = rd.new_run_dir(tmp_path / "cut")
    with pytest.raises(PixelforgeError, match="resume with"):
        fit(build_point_gan, cut, CONFIG, hooks=[InterruptAt(11)])
    partial = cut / "checkpoints" / ".last.ckpt.k9x2ab"  # atomic_write_bytes' name for it
    partial.write_bytes((cut / "checkpoints" / "last.ckpt").read_bytes()[:1000])
    fit(build_point_gan, cut, CONFIG, resume=True)
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert _rows(cut) == _rows(straight[0])


def test_rows_a_kill_9_cut_after_the_checkpoint_are_written_by_the_resume(straight, tmp_path, monkeypatch):
    """kill -9 after last.ckpt was written and before its epochs' rows were: the resume did not train those epochs
    again, so metrics.csv lacked their rows for good."""
    from pixelforge.engine import loop as loop_module

    class Killed(BaseException):  # not an Exception: nothing in fit may catch it, as nothing catches kill -9
        pass

    def killed_before_the_rows(path, row):
        raise Killed

    cut = rd.new_run_dir(tmp_path / "cut-rows")
    monkeypatch.setattr(loop_module.rd, "append_metrics", killed_before_the_rows)
    with pytest.raises(Killed):
        fit(build_point_gan, cut, CONFIG)
    monkeypatch.undo()
    assert rd.load_checkpoint(cut / "checkpoints" / "last.ckpt")["loop"]["epoch"] == 3
    assert not (cut / "metrics.csv").exists()
    fit(build_point_gan, cut, CONFIG, resume=True)
    assert _rows(cut) == _rows(straight[0])


def test_a_resume_says_where_it_continues_from(straight, tmp_path, caplog):
    """A run killed before its first checkpoint resumed without a word; a trained one said "at epoch 4" of 3."""
    run = rd.new_run_dir(tmp_path / "killed-early")  # kill -9 in the first epoch: nothing saved
    with caplog.at_level(logging.INFO, logger="pixelforge"):
        fit(build_point_gan, run, CONFIG, resume=True)
        fit(build_point_gan, run, CONFIG, resume=True)
    assert f"resuming {run}: no checkpoint yet, training from the first epoch" in caplog.text
    assert f"resuming {run}: its 3 epochs are trained" in caplog.text and "at epoch 4" not in caplog.text
    assert _rows(run) == _rows(straight[0])


def test_stop_training_from_a_hook_leaves_a_valid_run_folder(tmp_path):
    run = rd.new_run_dir(tmp_path / "stop")
    result = fit(build_point_gan, run, CONFIG, hooks=[StopAt(step=12)])
    assert result.stopped_early and result.stop_reason == "enough at step 12" and result.epochs_run == 1
    assert [r["epoch"] for r in rd.read_metrics(run / "metrics.csv")] == [1]
    saved = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert saved["loop"]["stopped_early"] and (saved["loop"]["epoch"], saved["loop"]["batch"]) == (1, 4)
    assert fit(build_point_gan, run, CONFIG, resume=True).epochs_run == 1  # a stopped run stays stopped

    run = rd.new_run_dir(tmp_path / "stop-epoch")
    result = fit(build_point_gan, run, CONFIG, hooks=[StopAt(epoch=2)])
    assert result.stopped_early and result.epochs_run == 2
    assert rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["loop"]["epoch"] == 2


def test_two_fits_in_one_process_restore_its_settings_and_agree(tmp_path):
    def settings():
        return (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), flush_denormal_enabled(),
                torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled())

    def marker(signum, frame):  # a handler of the caller's own, which fit must put back
        pass

    previous = signal.signal(signal.SIGTERM, marker)
    try:
        before = settings()
        first = fit(build_point_gan, rd.new_run_dir(tmp_path / "one"), CONFIG)
        assert settings() == before
        second = fit(build_point_gan, rd.new_run_dir(tmp_path / "two"), CONFIG)
        assert settings() == before and signal.getsignal(signal.SIGTERM) is marker
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert _rows(tmp_path / "one") == _rows(tmp_path / "two") and first.best_metric == second.best_metric


class CrashAt(Hook):
    """Not a stop, not an interruption: an error, as a bug or an out-of-memory kill would end a run."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, ctx):
        if ctx.state.epoch == self.epoch:
            raise RuntimeError("crash")


def test_fast_epochs_write_each_checkpoint_once_with_what_per_epoch_saves_held(straight, tmp_path, monkeypatch):
    from pixelforge.engine import loop

    run, _, _ = straight  # epochs far shorter than loop.CHECKPOINT_EVERY_S: everything is written after the last
    writes = []
    save = rd.save_checkpoint
    monkeypatch.setattr(rd, "save_checkpoint", lambda state, path: (writes.append(path.name), save(state, path)))
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 0.0)  # the engine before L18: both files at every epoch end
    every_epoch = rd.new_run_dir(tmp_path / "every-epoch")
    fit(build_point_gan, every_epoch, CONFIG)
    assert writes.count("last.ckpt") == 3 and writes.count("best.ckpt") >= 1
    for name in ("best.ckpt", "last.ckpt"):
        expected, got = (rd.load_checkpoint(r / "checkpoints" / name) for r in (every_epoch, run))
        assert expected["loop"] == got["loop"], name
        assert all(torch.equal(tensor, got["model"][key]) for key, tensor in expected["model"].items()), name
    assert _rows(every_epoch) == _rows(run)
    writes.clear()
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 30.0)
    fit(build_point_gan, rd.new_run_dir(tmp_path / "once"), CONFIG)
    assert sorted(writes) == ["best.ckpt", "last.ckpt"]


def test_a_crash_between_saves_leaves_rows_only_for_saved_epochs_and_resumes_to_the_same_run(straight, tmp_path,
                                                                                              monkeypatch):
    from pixelforge.engine import loop

    run, _, _ = straight
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 30.0)  # no save before the crash, however slow the machine
    crashed = rd.new_run_dir(tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="crash"):
        fit(build_point_gan, crashed, CONFIG, hooks=[CrashAt(2)])
    assert not (crashed / "checkpoints" / "last.ckpt").exists()
    assert not rd.read_metrics(crashed / "metrics.csv") if (crashed / "metrics.csv").exists() else True
    fit(build_point_gan, crashed, CONFIG, resume=True)
    expected, got = (rd.load_checkpoint(r / "checkpoints" / "last.ckpt") for r in (run, crashed))
    assert all(torch.equal(tensor, got["model"][key]) for key, tensor in expected["model"].items())
    assert _rows(crashed) == _rows(run)


class BatchSizes(Hook):
    def __init__(self):
        self.sizes = []

    def on_train_batch_end(self, ctx, outputs):
        self.sizes.append(outputs["count"])


def test_a_last_training_batch_of_one_image_is_left_out(tmp_path):
    """A lone last image fails BatchNorm on a 1x1 map (ssdlite: a ValueError traceback) and has no pair for a GAN or a
    contrastive loss; it is left out, a larger remainder is kept."""
    from functools import partial

    sizes = {}
    for n_train in (65, 66):
        recorder = BatchSizes()
        fit(partial(build_point_gan, n_train=n_train), rd.new_run_dir(tmp_path / f"n{n_train}"),
            FitConfig(epochs=1, batch_size=32, lr=2e-3, seed=0, accelerator="cpu", quiet=True), hooks=[recorder])
        sizes[n_train] = recorder.sizes
    assert sizes == {65: [32, 32], 66: [32, 32, 2]}


class RaiseAtStart(Hook):
    """Module level: a spawned DDP process unpickles it."""

    def __init__(self, error):
        self.error = error

    def on_fit_start(self, ctx):
        raise self.error


@pytest.mark.slow
def test_a_mistake_raised_in_a_ddp_process_reaches_the_caller_as_itself_not_a_traceback(tmp_path):
    """torch.multiprocessing hands a spawned process's exception to the parent as a ProcessRaisedException holding its
    traceback as text: a one-line PixelforgeError (or an interruption's exit code) became a traceback.

    One two-process run carries an interruption through, exit code and all; a plain PixelforgeError travels by the
    same record (each process writes its error, the caller raises the lowest rank's), read back here without a
    second pair of processes, whose start-up is most of this test's time."""
    from pixelforge.engine.fit import _record_process_error, _recorded_process_error
    from pixelforge.errors import Interrupted

    two = FitConfig(epochs=1, batch_size=32, lr=2e-3, seed=0, accelerator="cpu", devices=2, quiet=True)
    run = rd.new_run_dir(tmp_path / "stopped")
    with pytest.raises(Interrupted) as caught:
        fit(build_point_gan, run, two, hooks=[RaiseAtStart(Interrupted("stopped; resume with X", signal.SIGTERM))])
    assert caught.value.exit_code == 143 and str(caught.value) == "stopped; resume with X"
    assert not list(run.glob(".process-error-*"))  # read and removed
    for rank in (10, 2, 1):
        _record_process_error(run, rank, PixelforgeError(f"labels.csv: row 3 names no image (rank {rank})"))
    mistake = _recorded_process_error(run)
    assert type(mistake) is PixelforgeError and str(mistake) == "labels.csv: row 3 names no image (rank 1)"
    assert not list(run.glob(".process-error-*"))


def test_a_ddp_process_leaves_its_process_group_before_the_interpreter_exits(tmp_path):
    import torch.distributed as dist

    from pixelforge.engine.fit import _leave_process_group

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        _leave_process_group(type("OneRankOfTwo", (), {"world_size": 2})())
        assert not dist.is_initialized()  # gloo's threads are gone while Python still runs
        _leave_process_group(type("OneRankOfTwo", (), {"world_size": 2})())  # nothing left: no error
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
