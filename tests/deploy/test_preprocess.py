"""The NumPy/PIL preprocessing of a package gives the same model input as the PyTorch eval transform."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pixelforge.deploy.runtime.preprocess import (NotAnImageError, Preprocess, TooManyPixelsError,
                                                  TruncatedImageError, decode_bytes, decode_file, resize_and_crop,
                                                  to_model_input)


def _photo(size, mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    # Smooth gradients plus noise: resizing and JPEG behave as on photos, not as on flat colour.
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    rgb = np.stack([x, y, (x + y) / 2], -1) + rng.normal(0, 20, (h, w, 3))
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return img.convert(mode)


@pytest.mark.parametrize("size,fmt,mode", [((640, 480), "JPEG", "RGB"), ((97, 211), "PNG", "RGB"),
                                           ((300, 300), "PNG", "RGBA"), ((1200, 700), "JPEG", "L"),
                                           ((64, 64), "PNG", "P")])
@pytest.mark.parametrize("img_size,crop_pct,mean,std", [(224, 0.875, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                                                        (32, 1.0, (0.5,) * 3, (0.5,) * 3)])
def test_numpy_preprocessing_matches_torch_eval_transform(tmp_path, size, fmt, mode, img_size, crop_pct, mean, std):
    from pixelforge.data.dataset import decode_resized
    from pixelforge.data.transforms import decode_size, eval_transform

    path = tmp_path / f"img.{fmt.lower()}"
    _photo(size, mode).save(path, fmt)
    short = decode_size(img_size, crop_pct)
    expected = eval_transform(img_size, mean, std)(decode_resized(path, short)).numpy()
    pre = Preprocess(img_size, short, mean, std)
    got = to_model_input([resize_and_crop(decode_file(path, short), pre)], pre)[0]
    assert got.shape == expected.shape == (3, img_size, img_size) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-6


def test_bytes_decode_like_files(tmp_path):
    path = tmp_path / "photo.jpg"
    _photo((900, 600)).save(path, "JPEG")
    from_file = np.asarray(decode_file(path, min_side=256))
    from_bytes = np.asarray(decode_bytes(path.read_bytes(), min_side=256))
    assert np.array_equal(from_file, from_bytes)


def test_preprocess_json_round_trip():
    pre = Preprocess(224, 256, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert Preprocess.from_json(pre.to_json()) == pre
    assert pre.to_json()["channel_order"] == "RGB" and pre.to_json()["layout"] == "NCHW"


def test_upload_errors_are_classified():
    buf = io.BytesIO()
    _photo((400, 300)).save(buf, "JPEG")
    jpeg = buf.getvalue()
    with pytest.raises(NotAnImageError):
        decode_bytes(b"just some text, not pixels")
    with pytest.raises(NotAnImageError):
        decode_bytes(b"")
    with pytest.raises(TruncatedImageError):
        decode_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(TooManyPixelsError):
        decode_bytes(jpeg, max_pixels=400 * 300 - 1)
    assert decode_bytes(jpeg, max_pixels=400 * 300).size == (400, 300)


def test_an_uploaded_heic_photo_is_named_by_its_format_as_the_file_readers_name_it(tmp_path):
    """Every upload that PIL cannot identify was "not an image format pixelforge can read", where `predict`,
    `zeroshot` and `fewshot` name the file's format (HEIC, SVG, camera RAW) from its name."""
    from pixelforge.data.images import ImageReadError, load_rgb

    heic = b"\0\0\0\x18ftypheic" + bytes(64)  # what an iPhone sends: PIL without a HEIF plugin cannot identify it
    (tmp_path / "IMG_0001.HEIC").write_bytes(heic)
    with pytest.raises(ImageReadError, match="HEIC is not a format pixelforge reads"):
        load_rgb(tmp_path / "IMG_0001.HEIC")
    with pytest.raises(NotAnImageError) as refused:
        decode_bytes(heic, name="IMG_0001.HEIC")
    assert str(refused.value) == "IMG_0001.HEIC: HEIC is not a format pixelforge reads; send a JPEG, PNG, WebP, BMP, GIF or TIFF"
    with pytest.raises(NotAnImageError, match="^notes.jpg: not an image format pixelforge can read; send a JPEG"):
        decode_bytes(b"hello", name="notes.jpg")


@pytest.mark.parametrize("orientation, upright", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)),
                                                  (8, lambda a: np.rot90(a, 1))])
def test_every_decoder_shows_an_exif_rotated_photo_as_displayed(tmp_path, orientation, upright):
    """One rule for every path a user's photo takes (training, predict with a run or a package, serve, the mask
    tasks' reader): pixels turned as EXIF Orientation says, as a phone, a photo viewer and Ultralytics show them."""
    from pixelforge.data.images import load_rgb
    from pixelforge.data.masks.images import load_image_any, load_image_bytes

    stored = np.random.default_rng(0).integers(0, 255, (24, 40, 3), np.uint8)  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = tmp_path / "phone.png"  # PNG: lossless, so the stored pixels are known exactly
    Image.fromarray(stored).save(photo, exif=exif)
    expected = upright(stored)
    data = photo.read_bytes()
    decoded = {"load_rgb": np.asarray(load_rgb(photo)), "decode_file": np.asarray(decode_file(photo)),
               "decode_bytes": np.asarray(decode_bytes(data)), "load_image_any": load_image_any(photo),
               "load_image_bytes": load_image_bytes(data)}
    for name, array in decoded.items():
        assert np.array_equal(array, expected), name


@pytest.mark.parametrize("orientation, upright", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)),
                                                  (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_a_16_bit_colour_photo_read_through_opencv_or_tifffile_is_turned_by_its_exif_orientation(
        tmp_path, orientation, upright):
    """The guard above, for the one path PIL does not decode: 16-bit colour PNG and TIFF are read with OpenCV /
    tifffile (PIL would drop them to 8 bits), which ignore EXIF, so a 16-bit export was denoised or segmented
    sideways while its 8-bit copy was upright."""
    import struct
    import zlib

    import cv2
    import tifffile

    from pixelforge.data.masks.images import load_image_any

    stored = np.random.default_rng(1).integers(0, 65535, (24, 40, 3), np.uint16)
    cv2.imwrite(str(tmp_path / "scan.png"), stored[..., ::-1])
    exif = Image.Exif()
    exif[0x0112] = orientation
    tiff = exif.tobytes()[6:]  # an eXIf chunk holds the TIFF structure without the "Exif\0\0" marker
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    png = (tmp_path / "scan.png").read_bytes()
    (tmp_path / "scan.png").write_bytes(png[:-12] + chunk + png[-12:])  # before IEND
    tifffile.imwrite(tmp_path / "scan.tif", stored, extratags=[(274, "H", 1, orientation, True)])
    for name in ("scan.png", "scan.tif"):
        array = load_image_any(tmp_path / name)
        assert array.dtype == np.uint16 and np.array_equal(array, upright(stored)), name
