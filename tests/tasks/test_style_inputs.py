"""Style transfer tried the way an outside checker tries it: odd shapes, a moved style image, folders of the wrong
kind, output names PIL writes no image under. Each case either works with the output a user expects or ends in one
line naming the file and the problem (exit 2). Commands run in a process of their own (the `cli` fixture), as a
checker runs them: `--json` is read from the real stdout."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge
from tests.hostile.conftest import Outcome  # exit code, stdout, stderr; its error_line asserts one line
from tests.tasks.test_style import _photo as smooth_picture, write_awkward_styles

pytestmark = pytest.mark.xdist_group("style_inputs")  # one worker trains the tiny run once for the module


def _photo(path, size=(48, 40), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    return smooth_picture(path, seed, size)


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    """A tiny style run whose style image is deleted after training (moved, or a temporary file of a script)."""
    root = tmp_path_factory.mktemp("style-inputs")
    for i in range(4):
        _photo(root / "photos" / f"{i}.png", seed=i)
    style = _photo(root / "gone-style.png", size=(40, 40), seed=9)
    result = pixelforge.train(str(root / "photos"), task="style", style=str(style), img_size=32, epochs=1,
                              batch_size=2, width=4, residual_blocks=1, val_fraction=0.25,
                              out=str(root / "run"), quiet=True)
    style.unlink()
    return result.run_dir


@pytest.fixture
def pixelforge_cli(cli):
    """run(*args) -> Outcome(exit code, stdout, stderr) of `pixelforge ARGS` in a process of its own."""

    def run(*args):
        done = cli(*args)
        return Outcome(done.returncode, done.stdout, done.stderr)

    return run


def _json(outcome) -> dict:
    """`--json` prints exactly one JSON object on stdout, its numbers finite."""
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert isinstance(report, dict) and outcome.out.strip().count("\n") == 0
    assert all(math.isfinite(v) for v in report.values() if isinstance(v, float))
    return report


def test_optimisation_keeps_the_shape_of_a_panorama_and_of_a_one_pixel_photo():
    """Every scale's sides were floored at 16 px each on its own: a 32x4 panorama (1200x90 at --size 32) came out
    32x16 and a 1x1 photo (--size 0) 16x16, while the fast and arbitrary methods keep the photo's shape."""
    from pixelforge.tasks.style.gatys import stylize_by_optimisation
    from pixelforge.tasks.style.lossnet import build_loss_network

    net = build_loss_network("lite0")
    for shape in ((1, 3, 4, 32), (1, 3, 1, 1)):
        content = torch.rand(shape)
        result = stylize_by_optimisation(net, content, torch.rand(1, 3, 20, 20), steps=2, scales=2)
        assert result.image.shape == content.shape and torch.isfinite(result.image).all(), shape


def test_stylize_a_panorama_writes_the_panorama_s_shape(tmp_path, pixelforge_cli):
    wide = _photo(tmp_path / "wide.png", size=(400, 30))
    report = _json(pixelforge_cli("stylize", wide, _photo(tmp_path / "s.png", seed=3), "--out", tmp_path / "o.png",
                                  "--size", "32", "--steps", "2", "--json"))
    assert report["size"] == [32, 4] and Image.open(tmp_path / "o.png").size == (32, 4)


def test_a_run_whose_style_file_is_gone_still_measures_the_style_loss_and_exports_it(style_run, tmp_path,
                                                                                      pixelforge_cli):
    """`stylize RUN` read the style from the path given at training: once moved, "style_loss" was null (the
    contract's key without its number) and the package had no style.png, though the run keeps a copy."""
    content = _photo(tmp_path / "c.png", seed=5)
    report = _json(pixelforge_cli("stylize", style_run, content, "--out", tmp_path / "f.png", "--size", "32", "--json"))
    assert report["style_loss"] > 0 and report["method"] == "fast (PyTorch)"
    package = pixelforge.export(str(style_run), out=str(tmp_path / "package"))
    assert (package / "style.png").is_file()
    packaged = _json(pixelforge_cli("stylize", package, content, "--out", tmp_path / "p.png", "--size", "32", "--json"))
    assert packaged["style_loss"] == pytest.approx(report["style_loss"], rel=0.05)


def test_the_run_s_copy_of_the_style_is_read_as_training_read_it(tmp_path):
    """The copy was `convert("RGB")`: a 16-bit style white, a transparent one black around it, a phone's sideways."""
    from pixelforge.data.images import load_rgb
    from pixelforge.tasks.style.report import write_style_thumbnail

    write_awkward_styles(tmp_path)
    Image.new("RGBA", (8, 8), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    for name in ("scan.png", "phone.png", "clear.png"):
        copy = write_style_thumbnail(tmp_path / name, tmp_path / f"copy-{name}")
        assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(load_rgb(tmp_path / name))), name


def test_a_run_of_another_task_or_a_model_in_the_style_s_place_is_named(style_run, tmp_path, pixelforge_cli):
    """A classify run first was "neither a style run nor a package" (it is a run); a style run or package second,
    the order swapped, was "is a folder; give one image file", which did not say to put it first."""
    content = _photo(tmp_path / "c.png")
    (tmp_path / "classify-run").mkdir()
    (tmp_path / "classify-run" / "config.yaml").write_text("task: classify\n")
    (tmp_path / "classify-run" / "classes.json").write_text('["ant", "bee"]')
    outcome = pixelforge_cli("stylize", tmp_path / "classify-run", content, "--out", tmp_path / "o.png")
    assert outcome.code == 2
    assert "a 'classify' run, not a style run" in outcome.error_line
    for method in ("auto", "arbitrary"):
        outcome = pixelforge_cli("stylize", content, style_run, "--out", tmp_path / "o.png", "--method", method)
        assert outcome.code == 2
        assert outcome.error_line == (f"error: {style_run}: a style run in the style image's place; a run or package "
                                      f"goes first: pixelforge stylize {style_run} CONTENT --out OUT.png")
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("name", ["styled.xyz", "styled", "styled.txt"])
def test_an_out_no_image_format_is_named_by_is_refused_before_the_work(name, tmp_path, pixelforge_cli):
    """`--out styled.xyz` (or no extension) wrote PNG bytes under a name no viewer opens as a PNG."""
    content = _photo(tmp_path / "c.png")
    outcome = pixelforge_cli("stylize", content, content, "--out", tmp_path / name, "--size", "16", "--steps", "1")
    assert outcome.code == 2
    assert outcome.error_line.startswith(f"error: {tmp_path / name}: ") and ".png" in outcome.error_line
    assert not (tmp_path / name).exists() and not list(tmp_path.glob("styled*"))


@pytest.mark.parametrize("name, fmt", [("s.JPEG", "JPEG"), ("s.webp", "WEBP")])
def test_an_out_s_extension_chooses_the_format_written(name, fmt, tmp_path, pixelforge_cli):
    content = _photo(tmp_path / "c.png")
    _json(pixelforge_cli("stylize", content, content, "--out", tmp_path / name, "--size", "16", "--steps", "1",
                         "--json"))
    assert Image.open(tmp_path / name).format == fmt


@pytest.mark.parametrize("model", ["run", "arbitrary"])
def test_a_photo_too_large_to_score_in_free_memory_is_refused_by_every_method(model, style_run, tmp_path,
                                                                              monkeypatch):
    """Only optimisation was guarded: `stylize RUN photo --size 0` (or --method arbitrary) scores the output with the
    loss network at the photo's size, 5.8 GB at 6 megapixels, and a 24-megapixel photo was ended by the OOM killer
    with no message; now one line first, naming a --size that fits."""
    from pixelforge.engine import cpu_memory
    from pixelforge.errors import PixelforgeError

    Image.new("RGB", (1600, 1200), (120, 80, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(cpu_memory, "available_memory_bytes", lambda: 2 * 2**30)
    first, second = ((style_run, tmp_path / "big.png") if model == "run"
                     else (tmp_path / "big.png", _photo(tmp_path / "s.png")))
    with pytest.raises(PixelforgeError) as refused:
        pixelforge.stylize(first, second, tmp_path / "out.png", size=0,
                           method="fast" if model == "run" else "arbitrary")
    assert str(refused.value).startswith(f"{tmp_path / 'big.png'}: stylizing 1600x1200 ")
    assert "GB are free; pass --size" in str(refused.value) and not (tmp_path / "out.png").exists()


def test_steps_is_the_number_of_loss_evaluations_the_curve_has():
    """`--steps N` counts loss evaluations, shared by the scales; L-BFGS's line search evaluated past a scale's share
    (1 step gave 2 rows, 2 steps over 2 scales 4), so the curve and the progress bar overran N."""
    from pixelforge.tasks.style.gatys import stylize_by_optimisation
    from pixelforge.tasks.style.lossnet import build_loss_network

    net = build_loss_network("lite0")
    content, style = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 32)
    for steps, scales in ((1, 1), (2, 2), (5, 2)):
        result = stylize_by_optimisation(net, content, style, steps=steps, scales=scales)
        assert len(result.history) == steps, (steps, scales)
        assert result.image.shape == content.shape and torch.isfinite(result.image).all()


def test_a_built_in_style_given_to_training_says_it_belongs_to_the_arbitrary_method(tmp_path):
    """`train --task style --style 7` said "7: image not found": built-in styles are `stylize --method arbitrary`'s."""
    from pixelforge.errors import PixelforgeError

    for i in range(2):
        _photo(tmp_path / "photos" / f"{i}.png", seed=i)
    with pytest.raises(PixelforgeError, match=r"--style 7: a built-in style of `pixelforge stylize --method arbitrary`"):
        pixelforge.train(str(tmp_path / "photos"), task="style", style="7", img_size=32, epochs=1,
                         out=str(tmp_path / "run"), quiet=True)
    assert not (tmp_path / "run").exists()
