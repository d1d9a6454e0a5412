"""Reading image files robustly: every mode PIL knows becomes 8-bit RGB, EXIF rotation applied.

Real photo folders hold CMYK JPEGs, palette PNGs with transparency, 16-bit scans and phone photos whose pixels are
stored sideways with an EXIF orientation tag. `load_rgb` turns all of them into the same thing the model expects,
and `ImageReadError` names the file when one cannot be read, so a dataset can skip it instead of crashing mid-epoch.
"""

from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pixelforge.errors import PixelforgeError

# torchvision's ImageFolder list, plus GIF, JFIF (a JPEG by another name, what browsers save on Windows) and AVIF
# (phones and the web; Pillow 11.3+ decodes it, an older one lists such a file as unreadable).
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm"}

# Image formats of phones, cameras and the web that Pillow does not decode: named as such, never called "corrupt".
UNREAD_FORMATS = {".heic": "HEIC", ".heif": "HEIF", ".svg": "SVG (a vector drawing)", ".dng": "camera RAW",
                  ".raw": "camera RAW", ".cr2": "camera RAW", ".cr3": "camera RAW", ".nef": "camera RAW",
                  ".arw": "camera RAW", ".orf": "camera RAW", ".rw2": "camera RAW"}

# A decompression bomb guard that still admits large scans (about 16k x 16k).
Image.MAX_IMAGE_PIXELS = 256_000_000


class ImageReadError(PixelforgeError):
    """An image file that cannot be decoded (corrupt, truncated, empty, or not an image)."""


def unidentified_reason(path: Path) -> str:
    """Why Pillow could not identify `path`: a format it does not read (by the name's extension), or not an image."""
    kind = UNREAD_FORMATS.get(path.suffix.lower())
    if kind:
        return f"{kind} is not a format pixelforge reads; convert it to JPEG or PNG"
    return "not an image format PIL can identify; the file is corrupt or not an image"


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _files_below(folder: Path):
    """Every non-folder entry below `folder`, symbolic links to folders followed (as torchvision's ImageFolder
    does: `rglob` before Python 3.13 silently skips them), each real folder once, so a link to a parent ends.
    Hidden subfolders are not entered, as fastai's `get_image_files` does not: `.AppleDouble/` holds resource
    forks named exactly like the photos, `.thumbnails/` smaller copies of them."""
    seen = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [name for name in dirnames if not name.startswith(".")]
        yield from (Path(dirpath) / name for name in filenames)


def list_images(folder: Path) -> list[Path]:
    """All image files below `folder`, sorted so that every run sees the same order."""
    return sorted(p for p in _files_below(folder) if p.is_file() and is_image_file(p))


def list_broken_links(folder: Path) -> list[Path]:
    """Symbolic links below `folder` that point nowhere (a moved disk, a deleted target): `list_images` cannot
    see them as files, so they are listed here to be reported instead of silently dropped."""
    return sorted(p for p in _files_below(folder) if p.is_symlink() and not p.exists() and not p.name.startswith("."))


def missing_reason(path: Path) -> str:
    """Why `path` cannot be read although a dataset names it: a symbolic link that points nowhere, or no file."""
    if path.is_symlink():
        return f"a symbolic link that points nowhere (to {os.readlink(path)})"
    return "image file not found"


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha is composited on white, 16-bit is rescaled rather than clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float images hold values far above 255; `convert("L")` would clip them to white.
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


class MultiFrameWarning(UserWarning):
    """An image file with several frames (an animated GIF, WebP or PNG, a multi-page TIFF): frame 1 is predicted."""


_FRAME_KINDS = {"GIF": "an animated GIF", "WEBP": "an animated WebP", "PNG": "an animated PNG",
                "TIFF": "a multi-page TIFF"}
_frame_notes: list[dict] = []  # the collecting `multi_frame_warnings` block's {path: (kind, frames)}, when one runs


def _note_frames(source, img: Image.Image) -> None:
    """Inside `multi_frame_warnings`: record a file with several frames. A phone JPEG's second frame (MPO: a preview
    or depth map) is not another picture, so only the formats above count."""
    if not _frame_notes or not isinstance(source, (str, os.PathLike)) or img.format not in _FRAME_KINDS:
        return
    try:
        if getattr(img, "is_animated", False):  # reads no further than the second frame's header
            _frame_notes[0][str(source)] = (_FRAME_KINDS[img.format], img.n_frames)  # both seek back to frame 1
    except (OSError, ValueError, EOFError):  # a broken later frame: frame 1 still decodes, or fails with its own line
        pass


@contextmanager
def multi_frame_warnings():
    """Around a prediction call: afterwards, one `MultiFrameWarning` per file read inside that has several frames,
    naming it, its frame count and that frame 1 was used (once per file, however many batches read it). Nested
    blocks warn once, from the outermost; training reads no frames count.

    Example:
        >>> with multi_frame_warnings():  # doctest: +SKIP
        ...     load_rgb("spinner.gif")
        UserWarning: spinner.gif: an animated GIF with 12 frames; frame 1 is used (save the frames as separate images...)
    """
    if _frame_notes:  # an outer block collects and warns
        yield
        return
    notes: dict = {}
    _frame_notes.append(notes)
    try:
        yield
    finally:
        _frame_notes.remove(notes)
    for path, (kind, frames) in notes.items():
        warnings.warn(f"{path}: {kind} with {frames} frames; frame 1 is used (save the frames as separate images to "
                      f"predict each)", MultiFrameWarning, stacklevel=3)


def open_image(source) -> Image.Image:
    """`Image.open` with the pixel limit enforced from the header alone. PIL only warns (a stray warning, then gigabytes
    decoded) between `Image.MAX_IMAGE_PIXELS` and twice it; pixelforge refuses the whole band, raising PIL's own
    `DecompressionBombError` so every reader's handler for it applies."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(source)
    width, height = img.size
    if width * height > Image.MAX_IMAGE_PIXELS:
        img.close()
        raise Image.DecompressionBombError(f"{width}x{height} is {width * height} pixels")
    _note_frames(source, img)
    return img


def decode_size(img_size: int, crop_pct: float) -> int:
    """Shorter side images are decoded to: the centre crop of this size by `crop_pct` is `img_size` (timm's rule)."""
    return int(math.floor(img_size / crop_pct))


def decode_array(path: str | Path, short_side: int) -> np.ndarray:
    """Decode `path` to an RGB uint8 HWC array whose shorter side is `short_side` (never smaller). Raises
    ImageReadError like `load_rgb`."""
    img = load_rgb(path, min_side=short_side)
    w, h = img.size
    scale = short_side / min(w, h)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    if size != (w, h):
        img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8).copy()


def load_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode `path` into an upright RGB image.

    Args:
        path: the image file.
        min_side: when given, JPEG decoding may use a reduced scale (PIL's `draft`) as long as the shorter side stays
            at least this large; decoding a 12-megapixel photo at 1/4 scale is several times cheaper.

    Raises:
        ImageReadError: naming the file and what is wrong with it.

    Example:
        >>> from skimage import data; from PIL import Image; import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "cat.png"); Image.fromarray(data.chelsea()).save(p)
        >>> load_rgb(p).size
        (451, 300)
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: the file is empty (0 bytes); delete it or replace it with the real image")
        with open_image(path) as img:
            if min_side and img.format == "JPEG":
                scale = min(img.size) / min_side
                if scale >= 2:
                    img.draft("RGB", (int(img.size[0] / scale) + 1, int(img.size[1] / scale) + 1))
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageReadError:
        raise
    except FileNotFoundError:  # the one message for a dataset's file and a command's input alike
        reason = missing_reason(path) if path.is_symlink() else "does not exist"
        raise ImageReadError(f"{path}: {reason}; check the path") from None
    except IsADirectoryError:  # a folder where one image is expected (`compress RUN DIR`): not "corrupt"
        raise ImageReadError(f"{path}: is a folder; give one image file") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"{path}: image has too many pixels (over {Image.MAX_IMAGE_PIXELS}); resize it first") from None
    except Image.UnidentifiedImageError:  # its message repeats the path; say it once
        raise ImageReadError(f"{path}: {unidentified_reason(path)}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: cannot decode image ({exc}); the file is corrupt, truncated or not an image") from None


def read_each(paths, load, results: list, errors: tuple = (ImageReadError,)):
    """Yield `(path, load(path))` for each path `load` can read; one it cannot is recorded in `results` as
    `{"path", "error"}` (the one-line message) and skipped, so a batch of predictions never stops at a bad file.

    Example:
        >>> results = []
        >>> [p for p, _ in read_each(["missing.png"], load_rgb, results)], results[0]["path"]
        ([], 'missing.png')
    """
    for path in paths:
        try:
            image = load(path)
        except errors as exc:
            results.append({"path": str(path), "error": str(exc)})
            continue
        yield path, image
