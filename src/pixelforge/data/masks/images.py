"""Reading segmentation images at their true bit depth, and masks as class-index arrays.

Classification squeezes every file into 8-bit RGB (`data.images.load_rgb`); segmentation data is often microscopy,
medical or satellite imagery whose 16-bit grayscale values carry the signal, so here nothing is rescaled to 8 bits:
`load_image_any` returns uint8 or uint16 HxWxC arrays with C = 1 (grayscale) or 3 (colour). PIL reads most files;
16-bit colour PNG/TIFF, which PIL silently reduces to 8 bits, are read with OpenCV / tifffile instead.
Masks are read as int64 HxW class ids (`load_mask`): a palette PNG gives its indices, a grayscale file its values.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from pixelforge.data.images import ImageReadError, open_image, unidentified_reason
from pixelforge.errors import PixelforgeError

log = logging.getLogger("pixelforge")

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


class MaskFormatError(PixelforgeError):
    """A mask that decodes but is not a single-channel class-index image."""


def _tile_rawmode(img: Image.Image) -> str:
    """The decoder's raw mode ("RGB;16B" for a 16-bit colour PNG), which tells the bit depth PIL is hiding."""
    try:
        args = img.tile[0].args if hasattr(img.tile[0], "args") else img.tile[0][3]
    except (IndexError, TypeError, AttributeError):
        return ""
    return str(args[0] if isinstance(args, tuple) else args)


def _is_wide_colour(img: Image.Image) -> bool:
    return img.mode in ("RGB", "RGBA") and ";16" in _tile_rawmode(img)


def probe_image(path: str | Path) -> tuple[int, int]:
    """(channels, bit depth) of an image from its header only; cheap enough to call on many files."""
    with Image.open(path) as img:
        if img.mode in _SIXTEEN_BIT_MODES:
            return 1, 16
        if _is_wide_colour(img):
            return 3, 16
        return (1 if img.mode in ("L", "LA", "1") else 3), 8


def _read_wide_colour(path: Path) -> np.ndarray:
    """16-bit colour files, which PIL would decode as 8-bit RGB."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        array = tifffile.imread(path)
    else:
        import cv2

        array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if array is None:
            raise ImageReadError(f"{path}: cannot decode 16-bit colour image; the file is corrupt or truncated")
        array = array[..., 2::-1] if array.ndim == 3 else array  # OpenCV is BGR(A); keep RGB, drop alpha
    return np.ascontiguousarray(array[..., :3] if array.ndim == 3 else array[..., None])


EXIF_ORIENTATION = 0x0112

# EXIF Orientation -> the array operation Pillow's `exif_transpose` performs for it (rows first, then columns).
_ORIENT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
           8: lambda a: np.rot90(a, 1)}


def _upright(array: np.ndarray, orientation) -> np.ndarray:
    """An HxWxC array turned as its EXIF Orientation says (1 or unknown: as stored)."""
    turn = _ORIENT.get(orientation)
    return np.ascontiguousarray(turn(array)) if turn else array


def _to_uint16(array: np.ndarray, path: Path) -> np.ndarray:
    """32-bit integer or float pixels into uint16: values already in range are kept exactly, others are stretched."""
    if array.dtype.kind == "f" and array.size and 0.0 <= array.min() and array.max() <= 1.0:
        return np.round(array * 65535).astype(np.uint16)
    if array.dtype.kind in "iu" and (array.size == 0 or (array.min() >= 0 and array.max() <= 65535)):
        return array.astype(np.uint16)
    lo, hi = float(array.min()), float(array.max())
    log.info("%s: %s values %.4g..%.4g stretched to the 16-bit range", path, array.dtype, lo, hi)
    scaled = (array.astype(np.float64) - lo) / (hi - lo) * 65535 if hi > lo else np.zeros(array.shape)
    return np.round(scaled).astype(np.uint16)


def _pil_to_array(img: Image.Image, path: Path) -> np.ndarray:
    if img.mode in _SIXTEEN_BIT_MODES:
        return _to_uint16(np.asarray(img), path)[..., None]
    if img.mode in ("L", "1", "LA"):
        return np.asarray(img.convert("L"), dtype=np.uint8)[..., None]
    # RGB, RGBA (alpha dropped: it is not part of the scene), palette, CMYK, YCbCr ...
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def load_alpha(path: str | Path, like: np.ndarray) -> np.ndarray | None:
    """`path`'s transparency as HxWx1 in `like`'s dtype (8-bit alpha scaled up for a 16-bit image), or None when it
    has none. `load_image_any` leaves alpha out of the scene; a task that writes the picture back (denoise) puts
    it back unchanged."""
    try:
        with Image.open(path) as img:
            if "A" not in img.getbands() and "transparency" not in img.info:
                return None
            alpha = np.asarray(ImageOps.exif_transpose(img).convert("RGBA").getchannel("A"))
    except Exception:  # noqa: BLE001 - read by another decoder (tifffile): no alpha to keep
        return None
    if alpha.shape != like.shape[:2]:
        return None
    return (alpha.astype(np.uint16) * 257 if like.dtype == np.uint16 else alpha)[..., None]


def array_bit_depth(array: np.ndarray) -> int:
    """16 for uint16 pixels, else 8: the depth `load_image_any` decoded."""
    return 16 if array.dtype == np.uint16 else 8


def load_image_bytes(data: bytes) -> np.ndarray:
    """An upload's bytes as `load_image_any` reads a file: HxWxC, 16-bit kept 16-bit (the caller has already checked
    the bytes are a whole image of a size it accepts)."""
    import io

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return _pil_to_array(ImageOps.exif_transpose(img), Path("upload"))


def load_image_any(path: str | Path) -> np.ndarray:
    """Decode `path` into an HxWxC uint8 or uint16 array (C = 1 or 3), keeping 16-bit values as they are.

    Raises:
        ImageReadError: the file is missing, empty, corrupt or not an image (message names the file).

    Example:
        >>> import numpy as np, tempfile, os; from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "scan.png")
        >>> Image.fromarray(np.full((4, 5), 4000, np.uint16)).save(p)
        >>> a = load_image_any(p); (a.shape, a.dtype.name, int(a.max()))
        ((4, 5, 1), 'uint16', 4000)
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: the file is empty (0 bytes); delete it or replace it with the real image")
        with open_image(path) as img:
            if _is_wide_colour(img):  # OpenCV/tifffile ignore EXIF: turned here as `exif_transpose` turns PIL's
                return _upright(_read_wide_colour(path), img.getexif().get(EXIF_ORIENTATION, 1))
            img.load()
            return _pil_to_array(ImageOps.exif_transpose(img), path)
    except (ImageReadError, PixelforgeError):
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found; check the dataset layout") from None
    except IsADirectoryError:  # a folder where one image is expected (`compress RUN DIR`): not "corrupt"
        raise ImageReadError(f"{path}: is a folder; give one image file") from None
    except Image.DecompressionBombError:  # the same line as `load_rgb`'s, for every task
        raise ImageReadError(f"{path}: image has too many pixels (over {Image.MAX_IMAGE_PIXELS}); resize it first") from None
    except Exception as exc:  # noqa: BLE001 - PIL, OpenCV and tifffile fail in many ways; all mean "cannot read"
        if path.suffix.lower() in (".tif", ".tiff"):
            return _tifffile_fallback(path, exc)
        if isinstance(exc, Image.UnidentifiedImageError):  # `load_rgb`'s line: its message repeats the path
            raise ImageReadError(f"{path}: {unidentified_reason(path)}") from None
        raise ImageReadError(f"{path}: cannot decode image ({exc}); the file is corrupt, truncated or not an image") from None


def _tifffile_fallback(path: Path, first_error: Exception) -> np.ndarray:
    """TIFF flavours PIL cannot open (multi-sample 16-bit, float, tiled): tifffile reads them all."""
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception:  # noqa: BLE001
        raise ImageReadError(f"{path}: cannot decode TIFF ({first_error}); the file is corrupt or truncated") from None
    array = array[..., None] if array.ndim == 2 else array[..., :3]
    if array.dtype not in (np.uint8, np.uint16):
        array = _to_uint16(array, path)
    return np.ascontiguousarray(array)


def bit_depth(array: np.ndarray) -> int:
    return 16 if array.dtype == np.uint16 else 8


def match_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """HxWxC -> HxWx`channels`: grayscale is repeated into RGB, RGB is reduced to luminance (ITU-R 601-2 weights)."""
    have = array.shape[-1]
    if have == channels:
        return array
    if have == 1 and channels == 3:
        return np.repeat(array, 3, axis=-1)
    if have == 3 and channels == 1:
        luma = array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.round(luma).astype(array.dtype)[..., None]
    raise PixelforgeError(f"cannot turn a {have}-channel image into {channels} channels; use in_channels 1 or 3")


def dataset_intensity_stats(samples, max_images: int = 200, channels: int | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixel values scaled to [0, 1] by bit depth, over up to `max_images` images.

    Used to normalise 16-bit and grayscale data, whose statistics are nothing like ImageNet's (a 12-bit camera in a
    16-bit container uses only the bottom 1/16 of the range). Images are picked evenly spaced (deterministic) and
    subsampled to about 65k pixels each; unreadable files are skipped.

    Args:
        samples: objects with an `.image` path (`MaskSample`) or paths.
        max_images: how many images to look at.
        channels: adapt every image to this many channels first (default: the first readable image's).
    """
    paths = [getattr(s, "image", s) for s in samples]
    if len(paths) > max_images:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, max_images)]
    total = total_sq = None
    count = 0
    for path in paths:
        try:
            array = load_image_any(path)
        except ImageReadError:
            continue
        channels = channels or array.shape[-1]
        step = max(1, int(np.sqrt(array.shape[0] * array.shape[1] / 65536)))
        values = match_channels(array[::step, ::step], channels).reshape(-1, channels).astype(np.float64)
        values /= 65535.0 if array.dtype == np.uint16 else 255.0
        total = values.sum(0) if total is None else total + values.sum(0)
        total_sq = (values**2).sum(0) if total_sq is None else total_sq + (values**2).sum(0)
        count += len(values)
    if not count:
        raise PixelforgeError("no readable image to compute intensity statistics from; run `pixelforge data check`")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return [float(m) for m in mean], [float(max(s, 1e-6)) for s in std]


def load_mask(path: str | Path) -> np.ndarray:
    """Read a mask file as an int64 HxW array of class ids.

    A palette ('P') PNG gives its palette indices (VOC and pixelforge masks), a grayscale or 16-bit file its values.
    A colour mask is accepted only when it is gray (R == G == B).

    Raises:
        ImageReadError: the file cannot be decoded.
        MaskFormatError: the mask is a colour image, so class ids cannot be read from it.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: the mask file is empty (0 bytes); replace it with the real mask")
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img.convert("L") if mode in ("1", "LA") else img)
    except (ImageReadError, PixelforgeError):
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: mask file not found") from None
    except Exception as exc:  # noqa: BLE001
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise ImageReadError(f"{path}: cannot decode mask ({exc}); the file is corrupt or not an image") from None
        import tifffile

        try:
            array, mode = tifffile.imread(path), "tiff"
        except Exception:  # noqa: BLE001
            raise ImageReadError(f"{path}: cannot decode mask ({exc}); the file is corrupt or not an image") from None
    if array.ndim == 3:
        colour = array[..., :3]
        if colour.shape[-1] == 1 or (np.array_equal(colour[..., 0], colour[..., 1])
                                     and np.array_equal(colour[..., 0], colour[..., -1])):
            array = colour[..., 0]
        else:
            raise MaskFormatError(
                f"{path}: mask is a {mode} colour image, not single-channel; save class ids as a palette ('P') or "
                "grayscale PNG whose pixel value is the class id"
            )
    if array.dtype.kind == "f":
        array = np.round(array)
    return array.astype(np.int64)


def mask_palette() -> list[tuple[int, int, int]]:
    """256 RGB colours: 0 black (background), then VOC's colour-map (distinct, well known), 255 white (ignore)."""
    colours = []
    for index in range(256):
        r = g = b = 0
        value = index
        for bit in range(8):  # the VOC devkit's bit-interleaving colour-map
            r |= ((value >> 0) & 1) << (7 - bit)
            g |= ((value >> 1) & 1) << (7 - bit)
            b |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        colours.append((r, g, b))
    colours[255] = (255, 255, 255)
    return colours


def save_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write an HxW class-id array as a palette PNG (ids 0..255), which every viewer shows in colour."""
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise PixelforgeError(f"{path}: class ids must be 0..255 to be saved as a palette PNG")
    img = Image.fromarray(mask.astype(np.uint8))
    img.putpalette([c for colour in mask_palette() for c in colour])  # an 'L' image becomes 'P'
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
