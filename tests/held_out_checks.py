"""A check the caption and clip tests share: `evaluate --data D --split train` holds only the run's training images
(tasks/common/held_out.py)."""

from __future__ import annotations

import pytest

import pixelforge


def check_training_split_is_left_out_unless_asked(run, data, tmp_path) -> dict:
    """The test split scores with 0 left out; the train split is refused in one line naming --include-train, and
    scored whole with it (`excluded_training_images` None). Returns that last evaluation's metrics."""
    held_out = pixelforge.evaluate(run, data=str(data), out=tmp_path / "test").metrics
    assert held_out["split"] == "test" and held_out["excluded_training_images"] == 0
    with pytest.raises(pixelforge.PixelforgeError, match=r"all \d+ images in split 'train' are the run's own "
                                                         r"training images.*--include-train") as refused:
        pixelforge.evaluate(run, data=str(data), split="train", out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    everything = pixelforge.evaluate(run, data=str(data), split="train", include_train=True,
                                     out=tmp_path / "train").metrics
    assert f"all {everything['num_images']} images" in str(refused.value)
    assert everything["excluded_training_images"] is None
    return everything
