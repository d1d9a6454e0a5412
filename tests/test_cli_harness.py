"""The `cli` fixture (tests/cli_zygote.py): each command is a process of its own, in the caller's folder and
environment, and one past its timeout is killed, as with `subprocess.run`."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def test_each_command_is_its_own_process_in_the_callers_folder_and_environment(cli, shapes_dir, tmp_path,
                                                                                 monkeypatch):
    shutil.copytree(shapes_dir / "train", tmp_path / "pictures")
    found = cli("data", "check", "pictures", cwd=tmp_path)  # a relative path: resolved in the caller's folder
    assert found.returncode == 0 and "no problems found" in found.stdout, found.stderr
    first = cli.zygote.last_pid
    missing = cli("data", "check", "pictures")  # the test process's own folder has none
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr and missing.stdout == ""
    assert cli.zygote.last_pid != first and first != os.getpid()
    monkeypatch.setenv("PIXELFORGE_FEATURE_ENGINE", "no-such-engine")  # read by `train` when it runs, not on import
    refused = cli("train", "--data", shapes_dir, "--model", "simple_cnn", "--weights", "none", "--img-size", "32",
                  "--strategy", "linear", "--epochs", "1", "--out", tmp_path / "run")
    assert refused.returncode == 2 and "PIXELFORGE_FEATURE_ENGINE" in refused.stderr, refused.stderr


def test_a_command_past_its_timeout_is_killed(cli, shapes_dir):
    with pytest.raises(subprocess.TimeoutExpired):
        cli("data", "check", shapes_dir / "train", timeout=0.01)  # reads every image: far longer than 10 ms
    with pytest.raises(ProcessLookupError):
        os.killpg(cli.zygote.last_pid, 0)  # neither it nor anything it started is left
