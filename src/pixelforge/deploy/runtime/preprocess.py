"""The eval transform in NumPy and PIL: the same pixels the PyTorch model saw, with no torch import.

A run's evaluation pipeline is: decode (PIL, JPEG draft mode, EXIF rotation, any mode to RGB) -> bicubic resize so
the shorter side is `resize_short_side` -> centre crop `img_size` -> scale to [0, 1] -> normalize with mean/std ->
NCHW float32. `Preprocess` holds those numbers (it is `preprocess.json` in a package) and the functions below
apply them, so an exported model gets what the trained one got (the export's parity check measures it).

Uploads arrive as bytes; `decode_bytes` keeps them in memory and sorts failures into the three kinds a server
answers differently: not an image, a truncated image, and too many pixels (a decompression bomb).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelforge.data.images import UNREAD_FORMATS, load_rgb, open_image, to_rgb
from pixelforge.errors import PixelforgeError


@dataclass(frozen=True)
class Preprocess:
    """What `preprocess.json` holds: everything needed to turn an image into the model's input."""

    img_size: int
    resize_short_side: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "shorter side to resize_short_side, bicubic (PIL), aspect kept"
    crop: str = "centre crop img_size x img_size"
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: str = "uint8 / 255, then (x - mean) / std"
    dtype: str = "float32"

    def to_json(self) -> dict:
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Preprocess":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("img_size", "resize_short_side"):
            if not isinstance(known[key], int) or isinstance(known[key], bool) or known[key] < 1:
                raise ValueError(f"{key} {known[key]!r} is not a size in pixels")
        for key in ("mean", "std"):
            if not isinstance(known[key], list) or len(known[key]) != 3 or \
                    not all(isinstance(v, (int, float)) for v in known[key]):
                raise ValueError(f"{key} {known[key]!r} is not three numbers (R, G, B)")
            known[key] = tuple(known[key])
        return cls(**known)


class UploadError(PixelforgeError):
    """An uploaded file the server refuses; `status_code` is the HTTP status to answer with."""

    status_code = 400


class NotAnImageError(UploadError):
    status_code = 415


class TruncatedImageError(UploadError):
    status_code = 400


class TooManyPixelsError(UploadError):
    status_code = 413


def _draft(img: Image.Image, min_side: int | None) -> None:
    # Same rule as `pixelforge.data.images.load_rgb`, so files and uploads decode to the same pixels.
    if min_side and img.format == "JPEG":
        scale = min(img.size) / min_side
        if scale >= 2:
            img.draft("RGB", (int(img.size[0] / scale) + 1, int(img.size[1] / scale) + 1))


def decode_bytes(data: bytes, min_side: int | None = None, max_pixels: int | None = None, name: str = "upload") -> Image.Image:
    """Decode an image held in memory into an upright RGB image.

    Raises:
        NotAnImageError: the bytes are not an image PIL can identify.
        TooManyPixelsError: width x height exceeds `max_pixels` (checked from the header, before decoding).
        TruncatedImageError: the header is fine but the pixel data ends early or is corrupt.

    Example:
        >>> import io; from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30)).save(buf, "PNG")
        >>> decode_bytes(buf.getvalue()).size
        (40, 30)
    """
    if not data:
        raise NotAnImageError(f"{name}: the file is empty (0 bytes); send the image's bytes")
    try:
        img = open_image(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise TooManyPixelsError(f"{name}: the image has far too many pixels; resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        # An iPhone's .HEIC is named by its format, as the file readers name it (unidentified_reason)
        kind = UNREAD_FORMATS.get(Path(name).suffix.lower())
        what = f"{kind} is not a format pixelforge reads" if kind else "not an image format pixelforge can read"
        raise NotAnImageError(f"{name}: {what}; send a JPEG, PNG, WebP, BMP, GIF or TIFF") from None
    width, height = img.size
    if max_pixels and width * height > max_pixels:
        raise TooManyPixelsError(f"{name}: {width}x{height} is {width * height} pixels, over the limit of {max_pixels}; "
                                 f"resize it first")
    try:
        _draft(img, min_side)
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError:
        raise TooManyPixelsError(f"{name}: the image has far too many pixels; resize it first") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise TruncatedImageError(f"{name}: the image data is truncated or corrupt ({exc}); send the whole file") from None


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an image held in memory as `decode_bytes` turns it upright (EXIF orientations 5-8 swap
    them), read from its header: the size before any reduced-size (draft) decoding.

    Example:
        >>> import io; from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30)).save(buf, "PNG")
        >>> upright_size(buf.getvalue())
        (40, 30)
    """
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def decode_file(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode an image file exactly as training did (`load_rgb`); raises `ImageReadError` naming the file."""
    return load_rgb(path, min_side=min_side)


def resize_and_crop(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Resize the shorter side to `resize_short_side` (bicubic) and centre-crop: uint8 HWC, like the eval transform."""
    short = pre.resize_short_side
    w, h = img.size
    scale = short / min(w, h)
    size = (max(short, round(w * scale)), max(short, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    pixels = np.asarray(img, dtype=np.uint8)
    height, width = pixels.shape[:2]
    crop = pre.img_size
    # torchvision's centre crop: Python's round, offsets from the top-left corner.
    top, left = int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0))
    return pixels[top:top + crop, left:left + crop]


def to_model_input(crops: list[np.ndarray], pre: Preprocess) -> np.ndarray:
    """Stack uint8 HWC crops into the normalized float32 NCHW batch the model takes."""
    batch = np.stack(crops).astype(np.float32)
    batch *= np.float32(1.0 / 255.0)  # torchvision's ToDtype(scale=True) multiplies, and so do we: same bits
    batch -= np.asarray(pre.mean, dtype=np.float32)
    batch /= np.asarray(pre.std, dtype=np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def frame_to_image(frame_bgr: np.ndarray) -> Image.Image:
    """An OpenCV BGR frame as an RGB PIL image."""
    return Image.fromarray(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
