"""Running out of resources: memory (CUDA's torch.OutOfMemoryError, the CPU allocator's RuntimeError, Python's
MemoryError) in a training step, in validation and at inference; a full disk under a checkpoint or the config; a
DataLoader worker lost. Each is one line naming what ran out and the options that help, and nothing trained is lost.
Simulated (a step, a validation or a layer raises as torch does; a write fails as a full disk makes it): no real OOM.
"""

from __future__ import annotations

import errno
import os

import pytest
import torch

from pixelforge.engine import loop as loop_module
from pixelforge.engine.loop import Loop
from pixelforge.runs import folder as rd

TINY = ["--model", "simple_cnn", "--weights", "none", "--img-size", "32", "--strategy", "full", "--quiet"]
RAISED = {
    "cuda": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)"),
    "cpu": lambda: RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                                "memory: you tried to allocate 8589934592 bytes. Error code 12 (Cannot allocate memory)"),
    "python": lambda: MemoryError(),
}


def last_line(outcome) -> str:
    assert "Traceback" not in outcome.err, outcome.err
    return [line for line in outcome.err.splitlines() if line.strip()][-1]


def fail_on_call(monkeypatch, owner, name: str, nth: int, error):
    """`owner.name` raises `error()` on its `nth` call (1-based), and works as before otherwise."""
    real, calls = getattr(owner, name), []

    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == nth:
            raise error()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    return calls


@pytest.mark.parametrize("kind", sorted(RAISED))
def test_out_of_memory_in_a_training_step_is_one_line_and_the_run_resumes_at_a_lower_batch_size(
        kind, monkeypatch, tmp_path, shapes_dir, pixelforge_cli):
    """Was: CUDA's torch.OutOfMemoryError said "lower --batch-size or --img-size" and lost the epoch's steps (no
    checkpoint); the CPU allocator's message and a MemoryError were tracebacks."""
    monkeypatch.setattr(loop_module, "CHECKPOINT_EVERY_S", 1e9)  # nothing saved since the start but what OOM saves
    fail_on_call(monkeypatch, Loop, "_step", 4, RAISED[kind])
    run = tmp_path / "run"
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--batch-size", "8", "--epochs", "2", "--out", run,
                            "--precision", "32")  # auto may pick bf16 on a CPU that has it; the advice differs there
    assert result.code == 2, result.err
    line = last_line(result)
    assert line.startswith(f"error: out of {'GPU memory' if kind == 'cuda' else 'memory'} training simple_cnn at "
                           f"batch size 8, 32 px, precision 32: lower --batch-size (e.g. --batch-size 4) or "
                           f"--img-size, or use --precision bf16-mixed"), line
    assert line.endswith(f"resume with `pixelforge train --resume {run} --batch-size 4`"), line
    saved = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["loop"]
    assert (saved["epoch"], saved["batch"], saved["batch_size"]) == (0, 3, 8)  # the three steps done
    monkeypatch.undo()
    resumed = pixelforge_cli("train", "--resume", run, "--batch-size", "4")
    assert resumed.code == 0, resumed.err
    assert len(rd.read_metrics(run / "metrics.csv")) == 2


def test_out_of_memory_in_validation_keeps_the_trained_epoch(monkeypatch, tmp_path, shapes_dir, pixelforge_cli):
    fail_on_call(monkeypatch, Loop, "validate", 1, RAISED["cuda"])
    run = tmp_path / "run"
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--batch-size", "16", "--epochs", "1", "--out", run)
    line = last_line(result)
    assert result.code == 2 and line.startswith("error: out of GPU memory training simple_cnn at batch size 16"), line
    saved = rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["loop"]
    assert saved["epoch"] == 0 and saved["batch"] > 0  # the epoch's steps, before its validation
    monkeypatch.undo()
    resumed = pixelforge_cli("train", "--resume", run, "--batch-size", "8")
    assert resumed.code == 0, resumed.err
    assert [row["epoch"] for row in rd.read_metrics(run / "metrics.csv")] == [1]


def test_out_of_memory_at_the_first_step_leaves_no_run_folder(monkeypatch, tmp_path, shapes_dir, pixelforge_cli):
    fail_on_call(monkeypatch, Loop, "_step", 1, RAISED["cpu"])
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--epochs", "1", "--out", tmp_path / "run")
    line = last_line(result)
    assert result.code == 2 and "lower --batch-size (e.g. --batch-size 16)" in line and "resume" not in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["predict", "RUN", "IMAGE"], ["evaluate", "RUN"]], ids=["predict", "evaluate"])
def test_out_of_memory_at_inference_is_one_line_naming_the_command(command, monkeypatch, tiny_run, shapes_dir,
                                                                   pixelforge_cli):
    image = next(p for p in sorted(shapes_dir.rglob("*.png")))
    fail_on_call(monkeypatch, torch.nn.functional, "conv2d", 1, RAISED["cuda"])
    result = pixelforge_cli(*[{"RUN": tiny_run, "IMAGE": image}.get(arg, arg) for arg in command])
    assert result.code == 2, result.err
    assert result.error_line.startswith(f"error: out of GPU memory in `pixelforge {command[0]}`: "), result.err


def test_stylize_out_of_memory_names_the_size_given(monkeypatch, tmp_path, pixelforge_cli):
    from PIL import Image

    Image.new("RGB", (40, 30), "red").save(tmp_path / "content.png")
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "style.png")
    fail_on_call(monkeypatch, torch.nn.functional, "conv2d", 1, RAISED["python"])
    result = pixelforge_cli("stylize", tmp_path / "content.png", tmp_path / "style.png", "--size", "32", "--steps",
                            "2", "--out", tmp_path / "out.png")
    assert result.code == 2, result.err
    assert result.error_line == ("error: out of memory in `pixelforge stylize` (--size 32): lower --size (the "
                                 "content's longer side in px) or --scales"), result.err


def test_a_full_disk_under_a_checkpoint_keeps_the_one_before_and_says_how_to_resume(monkeypatch, tmp_path,
                                                                                     shapes_dir, pixelforge_cli):
    """A real ENOSPC from torch.save's writes carries no file name: it was a traceback."""
    monkeypatch.setattr(loop_module, "CHECKPOINT_EVERY_S", 0.0)  # a last.ckpt every epoch
    real, saves = rd.save_checkpoint, []

    def disk_fills(state, path):
        if path.name == "last.ckpt":
            saves.append(path)
            if len(saves) == 2:  # the second: half written, then the disk is full, as torch.save finds it
                def write(handle):
                    handle.write(b"x" * 1000)
                    raise OSError(errno.ENOSPC, "No space left on device")
                return rd.atomic_write_bytes(path, write)
        return real(state, path)

    monkeypatch.setattr(rd, "save_checkpoint", disk_fills)
    run = tmp_path / "run"
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--epochs", "3", "--out", run)
    line = last_line(result)
    assert result.code == 2 and line == (f"error: {run / 'checkpoints'}: no space left on the device; free some space "
                                         f"and resume with `pixelforge train --resume {run}`"), line
    assert rd.load_checkpoint(run / "checkpoints" / "last.ckpt")["loop"]["epoch"] == 1  # the one before, whole
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no partial file
    monkeypatch.undo()
    assert pixelforge_cli("train", "--resume", run).code == 0
    assert len(rd.read_metrics(run / "metrics.csv")) == 3


def test_a_full_disk_while_a_resume_rewrites_the_config_keeps_the_config(monkeypatch, tiny_run, tmp_path,
                                                                          pixelforge_cli):
    """config.yaml was rewritten in place on every resume: a full disk left it empty and the run unreadable."""
    import pathlib
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "config.yaml").read_text().replace("epochs: 3\n", "epochs: 4\n")  # one epoch left to train
    assert before != (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(before)

    real_write_text, real_replace = pathlib.Path.write_text, os.replace

    def write_text(self, *args, **kwargs):  # what a full disk does to an in-place write: truncated, then refused
        if self.name != "config.yaml":
            return real_write_text(self, *args, **kwargs)
        open(self, "w").close()
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    def replace(src, dst):  # an atomic write of config.yaml fails before its rename
        if pathlib.Path(dst).name == "config.yaml":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)
    monkeypatch.setattr(os, "replace", replace)
    result = pixelforge_cli("train", "--resume", run)
    assert result.code == 2 and "no space left on the device" in last_line(result), result.err
    assert (run / "config.yaml").read_text() == before


@pytest.mark.parametrize("error", [
    lambda: RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed. "),
    lambda: OSError(errno.EMFILE, "Too many open files"),
], ids=["worker-killed", "too-many-open-files"])
def test_a_lost_dataloader_worker_or_too_many_open_files_advises_workers_0(error, monkeypatch, tmp_path, shapes_dir,
                                                                           pixelforge_cli):
    fail_on_call(monkeypatch, Loop, "_step", 3, error)
    run = tmp_path / "run"
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--batch-size", "8", "--epochs", "1", "--out", run)
    line = last_line(result)
    assert result.code == 2 and line.startswith("error: data loading failed: ") and "--workers 0" in line, line
    assert line.endswith(f"resume with `pixelforge train --resume {run} --workers 0`"), line


def test_out_of_memory_in_the_report_says_the_epochs_are_trained_and_a_resume_writes_it(monkeypatch, tmp_path,
                                                                                       shapes_dir, pixelforge_cli):
    """The report scores the best checkpoint on the GPU: running out there was a traceback after a finished run."""
    from pixelforge.api import train as train_module

    fail_on_call(monkeypatch, train_module, "_finish", 1, RAISED["cuda"])
    run = tmp_path / "run"
    result = pixelforge_cli("train", "--data", shapes_dir, *TINY, "--epochs", "1", "--out", run)
    assert result.code == 2 and last_line(result) == (
        f"error: {run}: out of GPU memory in its report (its epochs are trained), scoring the best checkpoint; free "
        f"the memory other programs hold and write the report with `pixelforge train --resume {run}`"), result.err
    monkeypatch.undo()
    assert pixelforge_cli("train", "--resume", run).code == 0
    assert (run / "report.html").is_file()
