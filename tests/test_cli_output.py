"""What the command line prints when its output is not a terminal: a file, a pipe, a pipe whose reader went away."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-c", "from pixelforge.cli import main; main()"]
TINY = ["--model", "simple_cnn", "--weights", "none", "--strategy", "full", "--img-size", "32", "--batch-size", "4",
        "--precision", "32"]


@pytest.fixture(scope="module")
def two_colours(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("colours")
    for label, color in (("dark", 40), ("light", 200)):  # 24 images: an epoch in a second
        (root / label).mkdir()
        for i in range(12):
            Image.new("RGB", (32, 32), (color + i, color, color)).save(root / label / f"{i}.png")
    return root


def test_train_into_a_file_writes_plain_lines_no_blank_ones_and_no_carriage_returns(cli, two_colours, tmp_path):
    result = cli("train", "--data", two_colours, *TINY, "--epochs", "2", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr and "" not in lines, result.stderr  # a live bar off a terminal left blank lines
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 2 and all("val_acc" in line and "img/s)" in line for line in epochs), result.stderr
    assert any(line.startswith("training simple_cnn") and "precision" in line for line in lines)  # not cut at 80


def _closed_pipe():
    """A pipe's writing end whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    return write


def test_predict_json_into_a_closed_pipe_stops_quietly_with_sigpipes_code(tiny_run, shapes_dir):
    write = _closed_pipe()
    try:
        result = subprocess.run([*CLI, "predict", tiny_run, shapes_dir, "--json"], stdout=write, stderr=subprocess.PIPE,
                                text=True, timeout=300)
    finally:
        os.close(write)
    assert result.returncode == 141, result.stderr  # click turned the BrokenPipeError into a bare 1
    assert result.stderr == ""  # no traceback, no "Exception ignored"


def test_train_whose_output_reader_goes_away_saves_a_checkpoint_and_resumes(two_colours, tmp_path):
    """`pixelforge train ... 2>&1 | head -3`: stopped at the next line it writes, as SIGPIPE stops other tools,
    with the position saved."""
    run = tmp_path / "run"
    process = subprocess.Popen([*CLI, "train", "--data", two_colours, *TINY, "--epochs", "3", "--out", run],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:  # read up to the first epoch's line, then go away as `head` does
            if line.startswith("epoch 1:"):
                break
        process.stdout.close()
        code = process.wait(timeout=300)
    finally:
        process.kill()
    assert code == 141
    assert (run / "checkpoints" / "last.ckpt").is_file()  # it exited 1 before with nothing saved
    resumed = subprocess.run([*CLI, "train", "--resume", run], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert len((run / "metrics.csv").read_text().splitlines()) == 4  # a header and the 3 epochs, each once
