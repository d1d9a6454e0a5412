"""`quiet=True` from Python prints nothing: no log record falling back to stderr, no warning, and no Lightning
start-up banner from the processes DDP spawns. Run as a user's script, in a process of its own (pytest's own log
capture would hide what a plain script prints)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import logging, sys, warnings
    import pixelforge

    class Chatty:  # what the engine and the libraries it uses may say while a run trains
        def on_epoch_start(self, ctx):
            logging.getLogger("pixelforge").warning("a warning logged by pixelforge")
            warnings.warn("a library's warning")

    if __name__ == "__main__":
        result = pixelforge.train(sys.argv[1], model="simple_cnn", weights="none", strategy="full", img_size=32,
                                  epochs=1, batch_size=4, precision="32", accelerator="cpu", devices=int(sys.argv[3]),
                                  out=sys.argv[2], quiet=True, callbacks=[Chatty()])
        assert (result.run_dir / "report.html").is_file()
""")


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("colours")
    for label, color in (("dark", 40), ("light", 200)):
        (root / label).mkdir()
        for i in range(12):
            Image.new("RGB", (32, 32), (color + i, color, color)).save(root / label / f"{i}.png")
    return root


def _train_quietly(tmp_path, data, devices: int) -> subprocess.CompletedProcess:
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, script, data, tmp_path / "run", str(devices)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)


def test_quiet_training_prints_nothing(tmp_path, colours):
    result = _train_quietly(tmp_path, colours, devices=1)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.slow
def test_quiet_training_on_two_cpu_processes_prints_nothing(tmp_path, colours):
    """Lightning's "Initializing distributed ... All distributed processes registered" came from the spawned ones.
    The command line's `train --quiet` is this same `quiet` by the time it reaches `fit` (cli_options.py makes the
    option from the run config's key), and its spawned processes start as these do: the two-process check for both."""
    result = _train_quietly(tmp_path, colours, devices=2)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")


def test_quiet_is_silent_only_where_nobody_configured_logging(tmp_path, colours):
    """A program's own logging configuration still receives pixelforge's records with quiet=True."""
    script = tmp_path / "configured.py"
    script.write_text("import logging\nlogging.basicConfig(level=logging.WARNING, format='%(message)s')\n" + SCRIPT)
    result = subprocess.run([sys.executable, script, colours, tmp_path / "run", "1"], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "a warning logged by pixelforge" in result.stderr
