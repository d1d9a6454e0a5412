"""`tasks/common/held_out.py`: the run's training images leave an evaluation on user data, quietly listed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pixelforge.errors import PixelforgeError
from pixelforge.tasks.common.held_out import leave_out_training_images


def test_training_files_are_listed_without_repeating_the_training_datas_warnings(tmp_path, caplog):
    """Listing a caption run's training files re-read its data, and its warnings (an empty caption) printed again
    during evaluate, as if about the evaluated images."""
    files = []
    for name in ("a.png", "b.png", "c.png"):
        files.append(tmp_path / name)
        files[-1].write_bytes(name.encode())

    def training_paths():
        logging.getLogger("pixelforge.data.captions").warning("x.png: empty caption, left out")
        return [files[0]]

    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        kept, excluded = leave_out_training_images(files, Path, training_paths, "photos", "all")
    assert kept == files[1:] and excluded == 1
    assert "1 of 3 images are the run's training images" in caplog.text and "empty caption" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="pixelforge"):
        logging.getLogger("pixelforge").warning("after")  # logging is on again
    assert "after" in caplog.text
    with pytest.raises(PixelforgeError, match="--include-train"):
        leave_out_training_images(files[:1], Path, training_paths, "photos", "all")
