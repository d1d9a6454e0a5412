"""Every image mode a photo folder holds becomes upright 8-bit RGB; broken files raise a named, one-line error."""

import numpy as np
import pytest
from PIL import Image

from pixelforge.data.images import ImageReadError, load_rgb


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["CMYK", "P", "LA", "RGBA", "L", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    src = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"
    out = load_rgb(_save(src, tmp_path / f"x.{ext}"))
    assert out.mode == "RGB" and out.size == (30, 20)


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 60000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    out = np.asarray(load_rgb(_save(Image.fromarray(ramp), tmp_path / "deep.png")))
    assert out.max() == 255 and out.min() == 0 and len(np.unique(out[..., 0])) > 100


def test_alpha_is_composited_on_white(tmp_path):
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert np.asarray(load_rgb(_save(transparent, tmp_path / "a.png")))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), "red")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    out = load_rgb(_save(img, tmp_path / "rot.jpg", exif=exif))
    assert out.size == (20, 40)


def test_jpeg_draft_keeps_requested_size(tmp_path):
    big = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    out = load_rgb(_save(big, tmp_path / "big.jpg"), min_side=256)
    assert min(out.size) >= 256 and out.size[0] < 1600


def test_corrupt_truncated_and_empty_files_name_the_file(tmp_path):
    good = _save(Image.new("RGB", (64, 64), "blue"), tmp_path / "good.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image")
    for bad in (truncated, empty, text):
        with pytest.raises(ImageReadError) as info:
            load_rgb(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)


def test_a_folder_given_as_the_image_is_called_a_folder_not_a_corrupt_file(tmp_path):
    from pixelforge.data.masks.images import load_image_any

    for load in (load_rgb, load_image_any):  # `compress RUN DIR`, `stylize CONTENT DIR` read through these
        with pytest.raises(ImageReadError, match=f"^{tmp_path}: is a folder; give one image file$"):
            load(tmp_path)


def test_symlinked_folders_are_followed_once(tmp_path):
    from pixelforge.data.images import list_images

    photos = tmp_path / "elsewhere"
    photos.mkdir()
    Image.new("RGB", (8, 8)).save(photos / "a.png")
    root = tmp_path / "data"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "b.png")
    (root / "linked").symlink_to(photos)  # a folder of photos linked in, as ImageFolder reads it
    (photos / "loop").symlink_to(photos)  # a link to its own folder ends instead of recursing forever
    assert [p.relative_to(root).as_posix() for p in list_images(root)] == ["b.png", "linked/a.png"]


def test_hidden_subfolders_are_not_entered(tmp_path):
    from pixelforge.data.images import list_images

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    (tmp_path / ".AppleDouble").mkdir()  # a file server's resource forks, named like the photos they describe
    (tmp_path / ".AppleDouble" / "photo.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    assert list_images(tmp_path) == [tmp_path / "photo.jpg"]


def test_jfif_and_avif_photos_are_listed_and_read(tmp_path):
    """What browsers save on Windows (.jfif) and phones and the web send (.avif) were passed over without a word."""
    from pixelforge.data.images import list_images

    from PIL import features

    photo = Image.fromarray(np.full((12, 16, 3), (200, 40, 40), np.uint8))
    photo.save(tmp_path / "a.jfif", format="JPEG")
    names = ["a.jfif"]
    if features.check("avif"):  # Pillow 11.3+
        photo.save(tmp_path / "b.avif")
        names.append("b.avif")
    assert [p.name for p in list_images(tmp_path)] == names
    for path in list_images(tmp_path):
        assert load_rgb(path).size == (16, 12)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and which holds no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_an_image_between_the_pixel_limit_and_twice_it_is_refused_by_every_decoder_without_a_warning(tmp_path):
    # PIL only warns in this band and then decodes gigabytes; files, mask-task files and uploads refuse it alike.
    import warnings

    from pixelforge.data.masks.images import load_image_any
    from pixelforge.deploy.runtime.preprocess import TooManyPixelsError, decode_bytes

    side = int((1.5 * Image.MAX_IMAGE_PIXELS) ** 0.5)
    big = tmp_path / "big.png"
    big.write_bytes(_png_header_only(side, side))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for read in (load_rgb, load_image_any):
            with pytest.raises(ImageReadError, match=f"^{big}: image has too many pixels"):
                read(big)
        with pytest.raises(TooManyPixelsError, match="too many pixels"):
            decode_bytes(big.read_bytes(), name="big.png")


def test_a_file_that_is_not_an_image_gets_the_same_line_from_the_rgb_and_the_mask_task_readers(tmp_path):
    from pixelforge.data.masks.images import load_image_any

    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    messages = set()
    for read in (load_rgb, load_image_any):
        with pytest.raises(ImageReadError) as info:
            read(text)
        messages.add(str(info.value))
    assert messages == {f"{text}: not an image format PIL can identify; the file is corrupt or not an image"}


@pytest.mark.parametrize("name, kind", [("IMG_0001.HEIC", "HEIC"), ("logo.svg", "SVG (a vector drawing)"),
                                        ("DSC_0001.NEF", "camera RAW")])
def test_a_photo_in_a_format_pixelforge_does_not_read_is_named_as_such_not_called_corrupt(tmp_path, name, kind):
    from pixelforge.data.masks.images import load_image_any

    photo = tmp_path / name
    photo.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    for read in (load_rgb, load_image_any):
        with pytest.raises(ImageReadError) as info:
            read(photo)
        assert str(info.value) == f"{photo}: {kind} is not a format pixelforge reads; convert it to JPEG or PNG"


def _frames(n: int, size=(24, 16)) -> list[Image.Image]:
    return [Image.new("RGB", size, (60 * i, 200 - 60 * i, 90)) for i in range(n)]


def test_a_multi_frame_file_read_for_prediction_is_named_once_with_its_frame_count(tmp_path):
    """An animated GIF or WebP or a TIFF stack was silently predicted from its first frame: inside
    `multi_frame_warnings` (every predict) one warning per such file names it, its frames and that frame 1 is used,
    however often it is read; single-frame files, a phone's MPO JPEG and reads outside (training) say nothing."""
    import warnings

    from pixelforge.data.images import MultiFrameWarning, multi_frame_warnings
    from pixelforge.data.masks.images import load_image_any

    first, *rest = _frames(3)
    first.save(tmp_path / "spin.gif", save_all=True, append_images=rest)
    first.save(tmp_path / "spin.webp", save_all=True, append_images=rest, lossless=True)
    first.save(tmp_path / "stack.tif", save_all=True, append_images=rest[:1])
    first.save(tmp_path / "still.gif")
    first.save(tmp_path / "phone.jpg", format="MPO", save_all=True, append_images=rest[:1])  # photo + its preview
    with pytest.warns(MultiFrameWarning) as caught:
        with multi_frame_warnings():
            pixels = np.asarray(load_rgb(tmp_path / "spin.gif"))
            for _ in range(2):  # two batches, or two readers, of one file: still one line
                load_rgb(tmp_path / "spin.webp")
                load_image_any(tmp_path / "stack.tif")
            load_rgb(tmp_path / "still.gif")
            load_rgb(tmp_path / "phone.jpg")
    assert np.array_equal(pixels, np.asarray(first))  # frame 1, as before
    assert sorted(str(w.message) for w in caught) == [
        f"{tmp_path / 'spin.gif'}: an animated GIF with 3 frames; frame 1 is used (save the frames as separate "
        "images to predict each)",
        f"{tmp_path / 'spin.webp'}: an animated WebP with 3 frames; frame 1 is used (save the frames as separate "
        "images to predict each)",
        f"{tmp_path / 'stack.tif'}: a multi-page TIFF with 2 frames; frame 1 is used (save the frames as separate "
        "images to predict each)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MultiFrameWarning)
        load_rgb(tmp_path / "spin.gif")  # training's reads: no warning
