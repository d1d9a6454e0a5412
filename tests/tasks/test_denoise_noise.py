"""The noise models of `--noise` are seeded and match their written definitions (pixelforge/data/noise.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import pixelforge
from pixelforge.data.noise import parse_noise, quantize, rng_for, to_unit

GREY = np.full((128, 128, 3), 0.5)


def test_the_same_seed_and_name_give_the_same_noise_and_others_differ():
    noise = parse_noise("gaussian:25")
    a = noise.apply(GREY, rng_for(0, "cat.png"))
    assert np.array_equal(a, noise.apply(GREY, rng_for(0, "cat.png")))
    assert not np.array_equal(a, noise.apply(GREY, rng_for(1, "cat.png")))
    assert not np.array_equal(a, noise.apply(GREY, rng_for(0, "dog.png")))


def test_gaussian_sigma_is_on_the_0_255_scale_and_results_are_clipped():
    noisy = parse_noise("gaussian:25").apply(GREY, np.random.default_rng(0))
    assert abs((noisy - 0.5).std() * 255 - 25) < 0.5 and abs((noisy - 0.5).mean() * 255) < 0.5
    black = parse_noise("gaussian:25").apply(np.zeros((64, 64, 3)), np.random.default_rng(0))
    assert black.min() == 0.0 and black.max() <= 1.0 and (black == 0).mean() > 0.45  # half the draws clip at 0


def test_poisson_variance_is_level_over_peak():
    peak = 30.0
    noisy = parse_noise(f"poisson:{peak:g}").apply(np.full((256, 256, 1), 0.4), np.random.default_rng(0))
    assert abs(noisy.mean() - 0.4) < 0.005 and abs(noisy.var() - 0.4 / peak) < 0.1 * 0.4 / peak


def test_salt_and_pepper_hits_the_stated_share_of_pixels_with_black_or_white():
    noisy = parse_noise("saltpepper:0.1").apply(GREY, np.random.default_rng(0))
    changed = (noisy != 0.5).any(-1)
    assert abs(changed.mean() - 0.1) < 0.01
    values = noisy[changed]
    assert set(np.unique(values)) == {0.0, 1.0} and abs((values == 1).mean() - 0.5) < 0.05
    assert (noisy[changed] == noisy[changed][:, :1]).all()  # a pixel's channels together


def test_jpeg_is_pillows_encoder_at_that_quality():
    rng = np.random.default_rng(0)
    clean = quantize(rng.random((32, 48, 3)), np.uint8)
    got = parse_noise("jpeg:30").apply(to_unit(clean), rng)
    buffer = io.BytesIO()
    Image.fromarray(clean).save(buffer, format="JPEG", quality=30)
    assert np.array_equal(quantize(got, np.uint8), np.asarray(Image.open(buffer)))


def test_plus_applies_in_turn_and_bar_chooses_one_per_image():
    chained = parse_noise("saltpepper:0.2+gaussian:5").apply(GREY, np.random.default_rng(0))
    assert ((chained > 0.01) & (chained < 0.2)).mean() > 0.01  # salt and pepper blurred by the gaussian after it
    choice = parse_noise("gaussian:25|saltpepper:0.5")
    kinds = {("sp" if (choice.apply(GREY, np.random.default_rng(s)) == 0.5).any() else "g") for s in range(20)}
    assert kinds == {"g", "sp"}


@pytest.mark.parametrize("spec, message", [("gauss:25", "unknown noise 'gauss'"), ("gaussian:x", "needs a number"),
                                           ("jpeg:120", "out of range"), ("saltpepper:2", "out of range"),
                                           # nan and inf were "cannot convert float NaN to integer"
                                           ("gaussian:nan", "gaussian:nan out of range"),
                                           ("poisson:inf", "poisson:inf out of range"), ("jpeg:nan", "out of range"),
                                           # above full white every value is a coin flip: no image left
                                           ("gaussian:1e9", "gaussian:1e9 out of range.*SIGMA <= 255")])
def test_a_bad_noise_is_one_line_naming_the_spec(spec, message, tmp_path):
    with pytest.raises(pixelforge.PixelforgeError, match=message):
        parse_noise(spec)
    with pytest.raises(pixelforge.PixelforgeError, match="noise: .*" + message):
        pixelforge.train(str(tmp_path), task="denoise", noise=spec, out=str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_sigma_below_one_level_trains_with_a_warning_naming_the_0_255_scale(tmp_path, caplog):
    """`gaussian:0.1` is almost always a SIGMA meant on the 0-1 scale: on 8-bit images it rounds away."""
    assert [str(n) for n in parse_noise("gaussian:0.1|gaussian:25").below_one_level()] == ["gaussian:0.1"]
    assert parse_noise("gaussian:1+poisson:0.5").below_one_level() == []
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    caplog.set_level("WARNING", logger="pixelforge")
    pixelforge.train(str(folder), task="denoise", model="dncnn", depth=3, features=8, noise="gaussian:0.1", epochs=1,
                     img_size=32, batch_size=2, val_fraction=0.5, out=str(tmp_path / "run"), quiet=True)
    faint = [r.getMessage() for r in caplog.records if "0-255 scale" in r.getMessage()]
    assert len(faint) == 1 and "use gaussian:25.5" in faint[0]


def test_paired_noisy_and_clean_folders_are_matched_by_path_and_their_own_noise_is_used(tmp_path):
    from types import SimpleNamespace

    from pixelforge.tasks.denoise.data import load_pair, read_denoise_data, split_source
    from pixelforge.tasks.denoise.evaluate import noisy_version

    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        for kind in ("clean", "noisy"):
            (tmp_path / kind / "scene").mkdir(parents=True, exist_ok=True)
            Image.fromarray(quantize(rng.random((12, 16, 3)), np.uint8)).save(tmp_path / kind / "scene" / f"{name}.png")
    source = split_source(read_denoise_data(tmp_path), 0.34, 0.0, seed=0)
    assert source.paired and len(source.items) == 3 and {i.split for i in source.items} == {"train", "val"}
    item = source.items[0]
    assert item.noisy == tmp_path / "noisy" / "scene" / item.clean.name
    clean, noisy = load_pair(item, 3)
    run = SimpleNamespace(noise="gaussian:25", config=SimpleNamespace(seed=0))
    assert noisy_version(run, item, clean, noisy) is noisy  # real noise: nothing synthesised
    (tmp_path / "noisy" / "scene" / "c.png").unlink()
    with pytest.raises(pixelforge.PixelforgeError, match="c.png: no noisy image with the same path"):
        read_denoise_data(tmp_path)
