"""Training refuses data it cannot learn from before any folder exists, and records data it had to skip."""

from __future__ import annotations

import json

import pytest

from pixelforge.errors import PixelforgeError
from tests.data.test_sources import make_folder


def test_a_single_class_is_refused_up_front_with_nothing_written(tmp_path, cli):
    import pixelforge

    one = make_folder(tmp_path / "one", {"cats": 3})
    with pytest.raises(PixelforgeError, match="only one class") as raised:
        pixelforge.train(str(one), model="simple_cnn", weights="none", img_size=32, epochs=1, out=str(tmp_path / "r"))
    assert "\n" not in str(raised.value) and str(one) in str(raised.value)
    assert not (tmp_path / "r").exists()
    result = cli("train", "--data", one, "--model", "simple_cnn", "--weights", "none", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "only one class" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_training_records_symbolic_links_that_point_nowhere(tmp_path, capsys):
    import pixelforge

    data = make_folder(tmp_path / "data", {"a": 6, "b": 6})
    (data / "a" / "gone.png").symlink_to(tmp_path / "moved-disk" / "gone.png")
    run = pixelforge.train(str(data), model="simple_cnn", weights="none", img_size=32, epochs=1, batch_size=8,
                           strategy="full", out=str(tmp_path / "run")).run_dir
    summary = json.loads((run / "summary.json").read_text())
    assert summary["broken_links"] == [str(data / "a" / "gone.png")]
    assert summary["train_images"] + summary["val_images"] == 12
    captured = capsys.readouterr()
    assert "symbolic link(s) in the data point nowhere" in captured.out + captured.err
