"""The engine writes a complete run folder, resumes exactly, survives bad files and reads configs strictly."""

import json
import logging
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import pixelforge
from pixelforge.tasks.config import build_config
from pixelforge.runs import folder as rd
from pixelforge.errors import PixelforgeError

TINY = dict(model="simple_cnn", weights="none", img_size=32, strategy="full", lr=3e-3, quiet=True)


def test_run_folder_has_everything(tiny_run):
    for name in ("config.yaml", "classes.json", "metrics.csv", "summary.json", "report.html",
                 "checkpoints/last.ckpt", "checkpoints/best.ckpt"):
        assert (tiny_run / name).is_file(), name
    assert list((tiny_run / "tensorboard").rglob("events.out.tfevents.*"))
    rows = rd.read_metrics(tiny_run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["train_acc"] > 0.4
    assert yaml.safe_load((tiny_run / "config.yaml").read_text())["model"] == "simple_cnn"
    assert json.loads((tiny_run / "classes.json").read_text()) == ["circle", "square", "star", "triangle"]


def test_existing_run_folder_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep")
    assert rd.new_run_dir(tmp_path / "run").name == "run-2"
    assert (tmp_path / "run" / "precious.txt").read_text() == "keep"


def test_runs_started_at_once_with_one_out_get_a_folder_each(tmp_path):
    import threading

    barrier, claimed = threading.Barrier(8), []

    def start():
        barrier.wait()  # all eight look at the same free name at once
        claimed.append(rd.new_run_dir(tmp_path / "run"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(p.name for p in claimed) == sorted(["run"] + [f"run-{n}" for n in range(2, 9)])


class InterruptAt:
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == self.step:
            raise KeyboardInterrupt


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path, shapes_dir):
    options = dict(TINY, epochs=3, augment="none", dropout=0.0)
    straight = pixelforge.train(str(shapes_dir), out=str(tmp_path / "straight"), **options)
    with pytest.raises(PixelforgeError, match="resume with"):
        pixelforge.train(str(shapes_dir), out=str(tmp_path / "cut"), callbacks=[InterruptAt(20)], **options)
    saved = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["loop"]["epoch"] == 1 and saved["loop"]["batch"] > 0  # stopped mid-way through epoch 2
    resumed = pixelforge.train(resume=tmp_path / "cut")
    rows = rd.read_metrics(tmp_path / "cut" / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert abs(resumed.best_val_accuracy - straight.best_val_accuracy) <= 0.03
    final = rd.read_metrics(tmp_path / "straight" / "metrics.csv")[-1]
    assert abs(rows[-1]["val_loss"] - final["val_loss"]) < 0.05


def test_resuming_a_run_whose_last_checkpoint_is_gone_is_refused_rather_than_retrained(tiny_run, tmp_path):
    """It trained from the first epoch again and appended epochs 1, 2, 3 a second time to metrics.csv."""
    cut = shutil.copytree(tiny_run, tmp_path / "cut")
    rd.write_json(cut / "summary.json", {k: v for k, v in rd.read_json(cut / "summary.json").items()
                                         if k != "seconds_total"})  # not finished
    (cut / "checkpoints" / "last.ckpt").unlink()
    before = (cut / "metrics.csv").read_text()
    with pytest.raises(PixelforgeError, match=r"last\.ckpt: missing, though .*metrics\.csv records 3 trained epoch"):
        pixelforge.train(resume=cut)
    assert (cut / "metrics.csv").read_text() == before


def test_a_truncated_checkpoint_is_named_with_torchs_reason_alone(tiny_run, tmp_path):
    cut = shutil.copytree(tiny_run, tmp_path / "cut")
    last = cut / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(PixelforgeError) as refused:
        rd.load_checkpoint(last)
    assert str(refused.value).startswith(f"{last}: cannot read the checkpoint, it is truncated or corrupt")
    assert "miniz" not in str(refused.value)  # torch's note to its own developers


def test_an_empty_parent_checkpoint_is_one_line_and_the_continual_step_leaves_no_run_folder(cli, tiny_run,
                                                                                             shapes_dir, tmp_path):
    """A 0-byte best.ckpt (a disk that filled up) made the checkpoint's error handler raise an IndexError: a
    traceback, and the step's half-made run folder (config.yaml, classes.json, checkpoints/) was left behind."""
    parent = shutil.copytree(tiny_run, tmp_path / "parent")
    best = parent / "checkpoints" / "best.ckpt"
    best.write_bytes(b"")
    with pytest.raises(PixelforgeError) as refused:
        rd.load_checkpoint(best)
    assert str(refused.value) == (f"{best}: cannot read the checkpoint, it is truncated or corrupt (0 bytes); copy it "
                                  "again, or use checkpoints/last.ckpt beside it")
    done = cli("train", "--data", shapes_dir, "--continue-from", parent, "--epochs", "1", "--quiet",
               "--out", tmp_path / "step")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"error: {refused.value}"
    assert "Traceback" not in done.stderr and not (tmp_path / "step").exists()


def test_resuming_a_finished_run_says_so_and_rewrites_nothing(tiny_run, tmp_path, caplog):
    written = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*") if p.is_file()}
    with caplog.at_level(logging.INFO, logger="pixelforge"):
        result = pixelforge.train(resume=tiny_run)
    assert f"{tiny_run}: finished (3 of 3 epochs); nothing to resume" in caplog.text
    assert (result.run_dir, result.epochs_run, result.best_epoch) == (tiny_run, 3, rd.read_json(
        tiny_run / "summary.json")["best_epoch"])
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*") if p.is_file()} == written
    cut = shutil.copytree(tiny_run, tmp_path / "cut-in-its-report")  # trained, then stopped writing its report
    (cut / "report.html").unlink()
    rd.write_json(cut / "summary.json", {k: v for k, v in rd.read_json(cut / "summary.json").items()
                                         if k != "seconds_total"})
    pixelforge.train(resume=cut)
    assert (cut / "report.html").is_file() and "seconds_total" in rd.read_json(cut / "summary.json")


def test_train_leaves_the_callers_random_state_as_it_found_it(tmp_path, shapes_dir):
    """Calibrating and evaluating after training built models from the caller's torch RNG (fit restores its own)."""
    def draws():
        return torch.rand(1).item(), np.random.rand(), random.random()

    for seed in (torch.manual_seed, np.random.seed, random.seed):
        seed(123)
    expected = draws()
    for seed in (torch.manual_seed, np.random.seed, random.seed):
        seed(123)
    pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), **dict(TINY, epochs=1))
    assert draws() == expected


def test_resume_with_a_different_class_set_is_refused(tmp_path, shapes_dir, tiny_run):
    other = tmp_path / "other"
    for label in ("circle", "hexagon"):
        (other / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(other / label / f"{i}.png")
    with pytest.raises(PixelforgeError, match="added: \\['hexagon'\\]"):
        pixelforge.train(str(other), resume=tiny_run)


class ResumeFromAnotherTerminal:
    """While the run trains, `pixelforge train --resume RUN` in a process of its own."""

    def __init__(self, cli):
        self.cli, self.result = cli, None

    def on_train_batch_end(self, ctx, outputs):
        if ctx.state.global_step == 1:
            self.result = self.cli("train", "--resume", ctx.run_dir)


def test_a_run_being_trained_refuses_a_second_training_in_its_folder(tmp_path, shapes_dir, cli):
    second = ResumeFromAnotherTerminal(cli)
    pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), callbacks=[second], **dict(TINY, epochs=1))
    assert second.result.returncode == 2, second.result.stderr
    assert "another process is training this run folder" in second.result.stderr
    assert "Traceback" not in second.result.stderr
    assert [r["epoch"] for r in rd.read_metrics(tmp_path / "run" / "metrics.csv")] == [1]  # the epoch once
    assert pixelforge.train(resume=tmp_path / "run").epochs_run == 1  # the lock went with the training


SIGNAL_IN_THE_REPORT = """
import os, signal, sys, time
from pixelforge.tasks.registry import get_task
from pixelforge.cli import main

SIGNUM = int(sys.argv[1])

def write_report(self, run):  # the signal arrives while the report is written, after the last epoch
    os.kill(os.getpid(), SIGNUM)
    time.sleep(5)

type(get_task("classify")).write_report = write_report
sys.argv = ["pixelforge", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_report_says_how_to_resume_and_the_resume_writes_it(tmp_path, shapes_dir, signum):
    """SIGTERM there killed the process without a word (the engine's handler is gone once the epochs end); Ctrl-C
    printed "interrupted" alone."""
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", SIGNAL_IN_THE_REPORT, str(int(signum)), "train", "--data",
                           str(shapes_dir), "--out", str(run), "--epochs", "1", "--model", "simple_cnn", "--weights",
                           "none", "--img-size", "16", "--strategy", "full", "--quiet"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 128 + signum, proc.stderr
    assert last_line == (f"error: {run}: interrupted in its report (its epochs are trained); what was trained is "
                         f"saved: resume with `pixelforge train --resume {run}`")
    assert not (run / "report.html").exists()
    resumed = pixelforge.train(resume=run)
    assert resumed.epochs_run == 1 and (run / "report.html").is_file()
    assert [r["epoch"] for r in rd.read_metrics(run / "metrics.csv")] == [1]


@pytest.mark.slow
def test_sigterm_writes_a_resumable_checkpoint(tmp_path, shapes_dir):
    run = tmp_path / "sig"
    proc = subprocess.Popen([sys.executable, "-c", "from pixelforge.cli import main; main()", "train", "--data",
                             str(shapes_dir), "--model", "simple_cnn", "--weights", "none", "--img-size", "32",
                             "--strategy", "full", "--epochs", "200", "--out", str(run), "--quiet"],
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM and "resume with" in err  # 143, not a mistake's 2
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["loop"]["epoch"] >= 1
    resumed = pixelforge.train(resume=run, epochs=checkpoint["loop"]["epoch"] + 1)
    assert resumed.epochs_run == checkpoint["loop"]["epoch"] + 1


def test_corrupt_images_are_skipped_and_counted(tmp_path, shapes_dir):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shapes_dir, data)
    (data / "train" / "circle" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = pixelforge.train(str(data), out=str(tmp_path / "run"), epochs=1, **TINY)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert len(summary["unreadable_images"]) == 1 and "zz_broken.png" in summary["unreadable_images"][0]


def test_config_file_cli_wins_and_errors_name_the_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: digits\nepochs: 7\nmodel: resnet18\naugment_options:\n  hflip: false\n")
    cfg = build_config(path, epochs=3)
    assert (cfg.epochs, cfg.model, cfg.augment_options.hflip) == (3, "resnet18", False)
    path.write_text("data: digits\noptimiser: adam\n")
    with pytest.raises(PixelforgeError, match="optimiser: Extra inputs"):
        build_config(path)
    with pytest.raises(PixelforgeError, match="schedule: Input should be 'cosine', 'onecycle' or 'constant'"):
        build_config(None, data="digits", schedule="step")


def test_lr_auto_runs_a_range_test_and_plots_it(tmp_path, shapes_dir):
    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "auto"), epochs=1, lr_find_steps=20, **{**TINY, "lr": "auto"})
    assert 1e-6 < result.lr < 1.0
    assert (result.run_dir / "lr_find.png").is_file()


def test_gradual_strategy_and_early_stopping(tmp_path, shapes_dir):
    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "g"), epochs=6, early_stopping=1,
                              **{**TINY, "strategy": "gradual", "lr": 1e-6})
    assert result.epochs_run < 6  # a learning rate this small cannot keep improving


def test_linear_strategy_uses_cached_features(tmp_path, shapes_dir):
    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "lin"), epochs=3, model="tf_efficientnet_lite0",
                              weights="imagenet", img_size=64, strategy="linear", quiet=True)
    assert result.path == "cached-features"
    assert result.best_val_accuracy > 0.6  # pretrained features tell shapes apart; chance is 0.25


class RaiseOutOfMemory:
    def on_train_batch_end(self, ctx, outputs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_names_the_options_to_lower(tmp_path, shapes_dir):
    with pytest.raises(PixelforgeError, match="lower --batch-size"):
        pixelforge.train(str(shapes_dir), out=str(tmp_path / "oom"), epochs=1, callbacks=[RaiseOutOfMemory()], **TINY)


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_asking_for_cuda_without_one_is_a_one_line_error_that_leaves_no_run(tmp_path, shapes_dir):
    # Fabric raised a paragraph under a traceback and the half-made run folder stayed.
    with pytest.raises(PixelforgeError, match=r"^--accelerator cuda --devices 1: no CUDA device is available"):
        pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), epochs=1, accelerator="cuda", **TINY)
    assert not (tmp_path / "run").exists()


def test_bf16_mixed_precision_trains_on_cpu(tmp_path, shapes_dir):
    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "bf16"), epochs=1, precision="bf16-mixed", **TINY)
    assert result.epochs_run == 1 and 0 <= result.best_val_accuracy <= 1


def test_bf16_on_cpu_applies_the_exact_speedups(tmp_path, shapes_dir, caplog):
    caplog.set_level("INFO", logger="pixelforge")
    # The default backbone (depthwise-separable), on the CPU whose bf16 policy this is, also on a GPU machine.
    options = {**TINY, "model": "tf_efficientnet_lite0", "accelerator": "cpu"}
    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "dw"), epochs=1, precision="bf16-mixed", **options)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["precision"] == "bf16-mixed"
    speedups = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exact speed-ups:")]
    assert len(speedups) == 1 and "16 depthwise convolutions kept in fp32" in speedups[0]
    assert "5 TF-'same' paddings fused" in speedups[0] and "33 ReLU6 out of place" in speedups[0]
    if sys.platform.startswith("linux"):
        assert any(r.getMessage() == "malloc keeps freed blocks up to 1024 MiB for reuse" for r in caplog.records)


def test_auto_precision_is_resolved_in_the_run_and_kept_as_auto_in_its_config(tmp_path, shapes_dir):
    from pixelforge.api.train import _precision_probe
    from pixelforge.engine.precision import resolve_precision
    from pixelforge.tasks.config import build_config
    from pixelforge.tasks.registry import get_task

    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "auto"), epochs=1, **TINY)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    cfg = build_config(data=str(shapes_dir), epochs=1, **TINY)  # full: bf16 allowed, decided by the (kept) probe
    expected = resolve_precision("auto", fp32_reason=None, accelerator="auto",
                                 probe=_precision_probe(get_task("classify"), cfg, 4))
    assert summary["precision"] == expected[0]
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["precision"] == "auto"
    assert f"| precision | {summary['precision']} |" in (result.run_dir / "model_card.md").read_text()


def test_resume_with_more_epochs_than_planned_is_refused(tiny_run):
    # The cosine schedule ended at the planned epoch: extra epochs would train on a schedule stretched after the fact.
    with pytest.raises(PixelforgeError, match=r"--epochs 5: .* planned for 3 epochs .* start a new run"):
        pixelforge.train(resume=tiny_run, epochs=5)


def test_a_constant_lr_run_resumes_for_more_epochs_than_planned(tmp_path, shapes_dir):
    # A constant rate has no end to stretch: a long run is continued round after round by raising --epochs.
    tiny = {**TINY, "schedule": "constant", "warmup_epochs": 0}
    run = pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), epochs=1, **tiny).run_dir
    resumed = pixelforge.train(resume=run, epochs=2)
    assert [r["epoch"] for r in rd.read_metrics(run / "metrics.csv")] == [1, 2]
    assert resumed.epochs_run == 2 and "epochs: 2" in (run / "config.yaml").read_text()


def test_a_mistyped_python_keyword_names_the_closest_option(tmp_path):
    with pytest.raises(PixelforgeError, match="optimiser: .*did you mean 'optimizer'"):
        pixelforge.train("digits", model="simple_cnn", optimiser="adam", out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_best_val_accuracy_is_what_evaluate_reports_on_the_val_split(tmp_path, shapes_dir):
    """Training validates in fp32 even under mixed precision, as evaluate scores: one number, not two."""
    import torch.nn.functional as F

    from pixelforge.tasks.classify.inference import load_run, run_inference
    from pixelforge.tasks.classify.task import prepare_data

    result = pixelforge.train(str(shapes_dir), out=str(tmp_path / "run"), epochs=2, precision="bf16-mixed", **TINY)
    summary = rd.read_json(result.run_dir / "summary.json")
    evaluated = pixelforge.evaluate(result.run_dir, split="val")
    assert evaluated.metrics["split"] == "val" and evaluated.metrics["num_images"] == summary["val_images"]
    assert abs(evaluated.accuracy - summary["best_val_accuracy"]) <= 1e-6
    loaded = load_run(result.run_dir)
    samples = prepare_data(loaded.config)[0].split("val")
    logits, kept, _ = run_inference(loaded, samples, calibrated=False)  # the model's loss, before temperature
    targets = torch.tensor([loaded.classes.index(s.label) for s in kept])
    best = rd.read_metrics(result.run_dir / "metrics.csv")[summary["best_epoch"] - 1]
    assert abs(float(F.cross_entropy(logits, targets)) - best["val_loss"]) <= 1e-5


def test_the_interactive_display_leaves_the_engine_details_out(capsys, caplog):
    from pixelforge.engine.progress import EpochProgress

    caplog.set_level("INFO", logger="pixelforge")
    EpochProgress(quiet=False).detail("malloc keeps freed blocks up to 1024 MiB for reuse")
    EpochProgress(quiet=False).info("training simple_cnn on 40 images")
    shown = capsys.readouterr().err
    assert "training simple_cnn" in shown and "malloc" not in shown and not caplog.records
    EpochProgress(quiet=True).detail("malloc keeps freed blocks up to 1024 MiB for reuse")  # --quiet: the run's record
    assert [r.getMessage() for r in caplog.records] == ["malloc keeps freed blocks up to 1024 MiB for reuse"]
