"""16-bit and 1-channel images keep their values end to end; masks are read as class ids; the dataset's items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelforge.data.images import ImageReadError
from pixelforge.data.masks.dataset import MaskDataset
from pixelforge.data.masks.images import (MaskFormatError, dataset_intensity_stats, load_image_any, load_mask,
                                          probe_image, save_mask)
from pixelforge.data.masks.source import read_masks
from pixelforge.data.masks.transforms import eval_mask_transform
from pixelforge.errors import PixelforgeError


def _ramp16(h=32, w=40) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * 3 + 1000).astype(np.uint16)  # 1000 .. 4837: 12-bit-camera-like


@pytest.fixture
def gray16(tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(3):
        Image.fromarray(_ramp16() + i * 100).save(tmp_path / "images" / f"{i}.png")
        mask = np.zeros((32, 40), np.int64)
        mask[:, 20:] = 1
        save_mask(mask, tmp_path / "masks" / f"{i}.png")
    return tmp_path


def test_load_image_any_keeps_16_bit_grayscale_png(tmp_path):
    Image.fromarray(_ramp16()).save(tmp_path / "g.png")
    array = load_image_any(tmp_path / "g.png")
    assert array.dtype == np.uint16 and array.shape == (32, 40, 1)
    assert array.max() == _ramp16().max() > 255  # not rescaled, not clipped
    assert probe_image(tmp_path / "g.png") == (1, 16)


def test_load_image_any_keeps_16_bit_tiff_and_colour_png(tmp_path):
    Image.fromarray(_ramp16()).save(tmp_path / "g.tif")  # PIL writes 16-bit grayscale TIFF
    assert load_image_any(tmp_path / "g.tif").max() == _ramp16().max()
    import cv2
    import tifffile

    rgb = np.stack([_ramp16(), _ramp16() * 2, _ramp16() // 2], -1)
    cv2.imwrite(str(tmp_path / "c.png"), rgb[..., ::-1])  # PIL would decode this as 8-bit RGB
    tifffile.imwrite(tmp_path / "c.tif", rgb)
    for name in ("c.png", "c.tif"):
        array = load_image_any(tmp_path / name)
        assert array.dtype == np.uint16 and array.shape == (32, 40, 3), name
        np.testing.assert_array_equal(array, rgb)
        assert probe_image(tmp_path / name) == (3, 16)


def test_load_image_any_modes_and_errors(tmp_path):
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(tmp_path / "l.png")
    assert load_image_any(tmp_path / "l.png").shape == (8, 8, 1)
    Image.new("RGBA", (8, 6), (10, 20, 30, 0)).save(tmp_path / "a.png")
    assert load_image_any(tmp_path / "a.png")[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png: the file is empty"):
        load_image_any(tmp_path / "empty.png")
    (tmp_path / "junk.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ImageReadError, match=r"junk\.tif: cannot decode"):
        load_image_any(tmp_path / "junk.tif")


def test_load_mask_reads_ids_and_rejects_colour(tmp_path):
    save_mask(np.array([[0, 3], [255, 1]]), tmp_path / "p.png")
    assert load_mask(tmp_path / "p.png").tolist() == [[0, 3], [255, 1]]
    assert load_mask(tmp_path / "p.png").dtype == np.int64
    Image.fromarray(np.full((4, 4, 3), 2, np.uint8)).save(tmp_path / "gray_rgb.png")
    assert (load_mask(tmp_path / "gray_rgb.png") == 2).all()  # a gray RGB mask is fine
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0] = (128, 0, 0)
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    with pytest.raises(MaskFormatError, match=r"rgb\.png: mask is a RGB colour image, not single-channel"):
        load_mask(tmp_path / "rgb.png")


def test_16_bit_data_normalised_by_dataset_stats_not_clipped(gray16):
    source = read_masks(gray16)
    assert (source.channels, source.bit_depth) == (1, 16)
    mean, std = dataset_intensity_stats(source.samples)
    assert len(mean) == 1 and 1000 / 65535 < mean[0] < 5100 / 65535  # measured on 16-bit values
    dataset = MaskDataset(source.samples, eval_mask_transform(32), mean, std, in_channels=1, short_side=32)
    dataset.preload()
    assert dataset.pixels(0)[0].dtype == torch.uint16  # the cache keeps 16 bits
    image, mask = dataset[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and mask.dtype == torch.int64
    # Normalised with the data's own stats: roughly zero-mean, unit-std, and a smooth ramp, not 8-bit steps.
    assert abs(float(image.mean())) < 0.5 and 0.5 < float(image.std()) < 2.0
    assert len(torch.unique(image)) > 256
    raw = dataset.pixels(0)[0].float()
    assert raw.max() > 255  # clipping to 8 bits would cap this at 255


def test_dataset_channel_conversion_and_full_mask(split_layout):
    source = read_masks(split_layout)
    gray = MaskDataset(source.split("val"), eval_mask_transform(24), [0.5], [0.5], in_channels=1, short_side=24)
    gray.preload()
    image, mask = gray[0]
    assert image.shape == (1, 24, 24) and mask.shape == (24, 24)
    assert set(mask.unique().tolist()) <= {0, 1, 2}  # decode-time resize is nearest-neighbour for masks
    assert gray.full_mask(0).shape == (40, 48) and gray.full_mask(0).dtype == torch.int64
    rgb = MaskDataset(source.split("val"), None, [0.0] * 3, [1.0] * 3, in_channels=3)
    image, mask = rgb[0]
    assert image.shape == (3, 40, 48) and 0.0 <= image.min() and image.max() <= 1.0
    assert torch.allclose(image[:, 10, 10], torch.tensor([250 / 255, 0.0, 0.0])) and mask[10, 10] == 1
    with pytest.raises(PixelforgeError, match="normalisation has 3 mean"):
        MaskDataset(source.samples, None, [0.5] * 3, [0.5] * 3, in_channels=1)


def test_dataset_drops_unreadable_and_raises_on_bad_masks(split_layout):
    source = read_masks(split_layout)
    (source.samples[0].image).write_bytes(b"broken")
    dataset = MaskDataset(source.samples, None, [0.0] * 3, [1.0] * 3, 3, num_classes=3)
    errors = dataset.preload()
    assert len(errors) == 1 and str(source.samples[0].image) in errors[0] and len(dataset) == len(source.samples) - 1
    save_mask(np.full((40, 48), 7), source.samples[1].mask)
    with pytest.raises(PixelforgeError, match=r"class id\(s\) 7 outside 0..2"):
        MaskDataset(source.samples[1:], None, [0.0] * 3, [1.0] * 3, 3, num_classes=3).preload()
    save_mask(np.zeros((10, 10)), source.samples[2].mask)
    with pytest.raises(PixelforgeError, match=r"mask is 10x10 but its image .* is 48x40"):
        MaskDataset(source.samples[2:], None, [0.0] * 3, [1.0] * 3, 3).preload()
