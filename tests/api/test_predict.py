"""`pixelforge.predict` from Python: what a notebook passes (one path, a package, wrong types) gets results or one
line, as `pixelforge predict` does."""

from __future__ import annotations

import json

import pytest

import pixelforge
from pixelforge.errors import PixelforgeError


def _images(shapes_dir, count=2):
    return sorted((shapes_dir / "test").rglob("*.png"))[:count]


def test_one_path_not_in_a_list_is_predicted_as_that_path(tiny_run, shapes_dir):
    image = _images(shapes_dir, 1)[0]
    # was: the string's characters taken for paths ("/" walked the whole file system)
    assert [r["path"] for r in pixelforge.predict(tiny_run, str(image))] == [str(image)]
    assert pixelforge.predict(tiny_run, image) == pixelforge.predict(tiny_run, [str(image)])


def test_no_paths_is_one_line_that_says_what_to_pass(tiny_run):
    with pytest.raises(PixelforgeError, match="no paths given; pass a list of image files"):  # was "no images found in "
        pixelforge.predict(tiny_run, [])


@pytest.mark.parametrize("value", ["3", 2.5, True])
def test_a_top_k_that_is_no_integer_is_named(tiny_run, shapes_dir, value):
    with pytest.raises(PixelforgeError, match=r"predict: top_k=.*: an integer expected"):  # was a TypeError
        pixelforge.predict(tiny_run, _images(shapes_dir, 1), top_k=value)


def test_an_option_given_as_none_is_its_default(tiny_run, shapes_dir):
    images = _images(shapes_dir, 1)
    assert pixelforge.predict(tiny_run, images, top_k=None) == pixelforge.predict(tiny_run, images)  # was a TypeError


def test_an_exported_package_predicts_as_the_cli_does(tiny_run, shapes_dir, tmp_path, cli):
    package = pixelforge.export(tiny_run, tmp_path / "package", parity_images=8).package_dir
    images = [str(p) for p in _images(shapes_dir)]
    rows = pixelforge.predict(package, images, top_k=2)  # was "not a pixelforge run folder"
    printed = cli("predict", package, *images, "--top-k", "2", "--json")
    assert printed.returncode == 0, printed.stderr
    assert rows == json.loads(printed.stdout)
    assert [r["label"] for r in rows] == [r["label"] for r in pixelforge.predict(tiny_run, images)]


def test_a_package_option_that_is_no_number_is_named(tmp_path):
    from tests.deploy.conftest import write_detection_package
    from PIL import Image

    package = write_detection_package(tmp_path / "det")
    Image.new("RGB", (20, 10), (200, 30, 30)).save(tmp_path / "a.png")
    with pytest.raises(PixelforgeError, match=r"predict: score_threshold='high': a number expected"):  # a TypeError
        pixelforge.predict(package, tmp_path / "a.png", out=tmp_path / "out", score_threshold="high")


@pytest.mark.parametrize("task, command", [("clip", "a clip run .*pixelforge zeroshot IMAGES --run"),
                                           ("compress", "a compression run .*pixelforge compress")])
def test_a_run_whose_task_predicts_by_another_command_names_it(task, command, shapes_dir, tmp_path):
    run = tmp_path / task  # predict refuses before loading anything: the config's task is all it reads
    run.mkdir()
    (run / "config.yaml").write_text(f"task: {task}\ndata: x\n")
    (run / "classes.json").write_text("[]")
    with pytest.raises(PixelforgeError, match=command):  # was "not available for task"
        pixelforge.predict(run, _images(shapes_dir, 1))
