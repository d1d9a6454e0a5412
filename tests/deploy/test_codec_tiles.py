"""A learned codec's transforms run tile by tile on large images (deploy/runtime/codec_tiles.py): the same `.pfc`
file, the same decoded pixels, margins computed from the models' own layers, and no tile the size of the image."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import pixelforge.deploy.runtime.codec_tiles as codec_tiles
from pixelforge.deploy.runtime.codec_tiles import COMPRESSAI_G_A, COMPRESSAI_G_S, latent_margin
from pixelforge.deploy.runtime.learned_codec import Transforms, compress_pixels, decompress_bytes, pad_pixels

warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script deprecation inside compressai
pytest.importorskip("compressai")

from pixelforge.tasks.compress.models import compressai_models  # noqa: E402
from pixelforge.tasks.compress.tables import freeze_tables, spatial_layers, torch_transforms  # noqa: E402

TILE = 64  # image pixels a side of a tile's core in these tests: a 200 x 264 photo is 4 x 5 tiles (plus margins)


def photo(size=(200, 264)) -> np.ndarray:
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize(size[::-1]))


def tiny_codec(kind: str):
    torch.manual_seed(0)
    model = compressai_models()[kind](8, 12).eval()
    return model, freeze_tables(model), torch_transforms(model)


def watched(transforms: Transforms, seen: dict) -> Transforms:
    """The same transforms, recording the height and width of every input g_a and g_s get."""
    def watch(name, transform):
        def run(x):
            seen.setdefault(name, []).append(x.shape[2:])
            return transform(x)
        return run

    return Transforms(watch("g_a", transforms.g_a), watch("g_s", transforms.g_s), transforms.h_a, transforms.h_s,
                      transforms.g_a_layers, transforms.g_s_layers)


@pytest.mark.parametrize("kind", ["factorized", "hyperprior"])
def test_the_margins_come_from_the_models_own_layers(kind):
    model, _, transforms = tiny_codec(kind)
    assert spatial_layers(model.g_a) == transforms.g_a_layers == COMPRESSAI_G_A  # what a package's ONNX runs
    assert spatial_layers(model.g_s) == transforms.g_s_layers == COMPRESSAI_G_S
    # g_a: a latent position reads 61 pixels (±30, under 2 x 16); g_s: a pixel reads latents up to 2 positions away
    assert latent_margin(COMPRESSAI_G_A, analysis=True) == 2 and latent_margin(COMPRESSAI_G_S, analysis=False) == 2
    assert spatial_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.Upsample(scale_factor=2))) is None


@pytest.mark.parametrize("kind", ["factorized", "hyperprior"])
def test_a_large_image_is_coded_tile_by_tile_into_the_same_file_and_decodes_to_the_same_pixels(kind, monkeypatch):
    """Encode: the tiled latent is the whole image's within 1e-4 and quantises identically, so the file's bytes
    are equal. Decode: the tiled pixels equal the whole decode's within one grey level (in practice equal)."""
    _, codec, transforms = tiny_codec(kind)
    pixels = photo()
    whole = compress_pixels(pixels, codec, transforms)  # 208 x 320 padded: under 1024 + 2 margins, one pass
    whole_decoded = decompress_bytes(whole, codec, transforms)

    monkeypatch.setattr(codec_tiles, "TILE", TILE)
    seen = {}
    tiled = compress_pixels(pixels, codec, watched(transforms, seen))
    padded = pad_pixels(pixels, kind)[0]
    assert max(h for h, _ in seen["g_a"]) < padded.shape[0] and max(w for _, w in seen["g_a"]) < padded.shape[1]
    assert len(seen["g_a"]) >= 12  # the model never saw the whole image, only tiles with their margins
    y_whole = transforms.g_a(np.ascontiguousarray((padded.astype(np.float32) / 255).transpose(2, 0, 1)[None]))
    y_tiled = codec_tiles.analyse_in_tiles(padded, transforms.g_a, transforms.g_a_layers)
    assert np.abs(y_tiled - y_whole).max() < 1e-4
    assert tiled == whole

    decoded = decompress_bytes(whole, codec, watched(transforms, seen))
    latent = (padded.shape[0] // 16, padded.shape[1] // 16)
    assert all(h < latent[0] and w < latent[1] for h, w in seen["g_s"])
    assert decoded.shape == pixels.shape
    assert np.abs(decoded.astype(int) - whole_decoded.astype(int)).max() <= 1


def test_a_margin_one_short_of_the_computed_one_changes_the_latent(monkeypatch):
    """The margins are needed: one latent position less and the tiles' edges see zero padding, not their neighbours."""
    _, codec, transforms = tiny_codec("factorized")
    padded = pad_pixels(photo(), "factorized")[0]
    exact = codec_tiles.analyse_in_tiles(padded, transforms.g_a, transforms.g_a_layers, tile=TILE)
    computed = codec_tiles.latent_margin
    monkeypatch.setattr(codec_tiles, "latent_margin", lambda layers, analysis: computed(layers, analysis) - 1)
    short = codec_tiles.analyse_in_tiles(padded, transforms.g_a, transforms.g_a_layers, tile=TILE)
    assert np.abs(short - exact).max() > 1e-3


def test_an_image_within_a_tile_takes_today_s_single_pass_bit_for_bit():
    """Small images (and files written before tiling) are coded and decoded exactly as before: one call each."""
    _, codec, transforms = tiny_codec("hyperprior")
    pixels = photo((100, 140))
    seen = {}
    data = compress_pixels(pixels, codec, watched(transforms, seen))
    decoded = decompress_bytes(data, codec, watched(transforms, seen))
    assert seen["g_a"] == [(128, 192)] and seen["g_s"] == [(8, 12)]
    x = np.ascontiguousarray((pad_pixels(pixels, "hyperprior")[0].astype(np.float32) / 255).transpose(2, 0, 1)[None])
    x_hat = transforms.g_s(np.round(transforms.g_a(x)))  # hyperprior: ŷ = round(y)
    assert np.array_equal(decoded, (np.clip(x_hat[0], 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)[:100,
                                                                                                          :140])


def test_the_package_s_psnr_is_summed_in_bands_of_rows_and_equals_the_float64_formula():
    """`predict PACKAGE`'s PSNR took float64 copies of the photo (1.7 GB at 24 MP); banded integer sums are exact."""
    from pixelforge.deploy.runtime.compress import psnr

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (601, 37, 3), dtype=np.uint8) for _ in range(2))
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert psnr(a, b) == 10 * np.log10(255.0 ** 2 / mse) and psnr(a, a) == float("inf")

    import tracemalloc

    a, b = (rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8) for _ in range(2))  # 3 MB each
    tracemalloc.start()
    psnr(a, b)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16e6  # float64 copies of the whole pair were 75 MB
