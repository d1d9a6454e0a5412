"""`pixelforge.train` from Python: `Path` objects are taken wherever a path is."""

from __future__ import annotations

from pathlib import Path

import pixelforge


def test_paths_given_as_path_objects_train_as_strings_do(shapes_dir, tmp_path):
    # was: "data: Input should be a valid string (got PosixPath(...)); out: ..."
    result = pixelforge.train(Path(shapes_dir), model="simple_cnn", weights="none", img_size=16, epochs=1,
                              batch_size=32, strategy="full", calibrate=False, out=tmp_path / "run", quiet=True)
    assert result.run_dir == tmp_path / "run" and (result.run_dir / "checkpoints" / "best.ckpt").is_file()
    assert pixelforge.evaluate(result.run_dir).metrics["num_images"] > 0


def test_callbacks_that_are_no_list_are_named_before_a_run_folder_exists(tmp_path):
    import pytest

    from pixelforge.errors import PixelforgeError

    class Hook:
        def on_epoch_end(self, ctx):
            pass

    with pytest.raises(PixelforgeError, match=r"callbacks: a list of hooks .*not a Hook; pass callbacks=\[hook\]"):
        pixelforge.train("digits", callbacks=Hook(), out=tmp_path / "run")  # was "'Hook' object is not iterable"
    assert not (tmp_path / "run").exists()
