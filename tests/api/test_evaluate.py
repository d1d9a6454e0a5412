"""`pixelforge.evaluate` from Python: a mistyped split is one line naming the run's splits."""

from __future__ import annotations

import pytest

import pixelforge
from pixelforge.errors import PixelforgeError


def test_a_split_the_runs_data_lacks_names_the_splits_it_has(tiny_run, tmp_path):
    with pytest.raises(PixelforgeError, match=r"no images in split 'tset'; the run's splits: test, train, val"):
        pixelforge.evaluate(tiny_run, split="tset", out=tmp_path / "eval")  # was an IndexError
    assert not (tmp_path / "eval").exists()


def test_classifys_own_functions_name_a_run_of_another_task(tiny_run, shapes_dir, tmp_path):
    import shutil

    from pixelforge.tasks.classify.evaluate import evaluate
    from pixelforge.tasks.classify.predict import predict

    run = shutil.copytree(tiny_run, tmp_path / "seg")  # a segmentation run, as far as its config says
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("task: classify", "task: segment"))
    for call in (lambda: evaluate(run), lambda: predict(run, sorted((shapes_dir / "val").rglob("*.png"))[:1])):
        with pytest.raises(PixelforgeError, match=r"seg: a 'segment' run, not a 'classify' run"):  # AttributeError
            call()


@pytest.mark.parametrize("function", [pixelforge.evaluate, lambda run: pixelforge.export(run, "package")])
def test_no_run_folder_is_one_line(function):
    with pytest.raises(PixelforgeError, match=r"run folder: None given; pass the folder `train --out` made"):
        function(None)  # was "expected str, bytes or os.PathLike object, not NoneType"
