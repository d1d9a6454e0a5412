"""Mask pictures and prediction files, with numpy and PIL only (exported packages predict without torch).

Shared by `predict_segmentation` (a run, PyTorch), the segmentation runtime (a package) and the evaluation
figures (viz/segmentation.py), so a mask looks the same whichever wrote it.

The palette is the Pascal VOC colour map (Everingham et al. 2010) that `data.masks` writes into mask PNGs: class 0
black, then distinct saturated colours, so predicted masks look like the training masks in any viewer. Ignored
pixels are drawn white.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.errors import PixelforgeError

IGNORE_COLOR = (255, 255, 255)


def palette(num_colors: int = 256) -> np.ndarray:
    """The mask colours as [num_colors, 3] uint8: the same VOC colour map the data tools write into mask PNGs."""
    from pixelforge.data.masks.images import mask_palette

    return np.asarray(mask_palette()[:num_colors], dtype=np.uint8)


def colorize(mask: np.ndarray, num_classes: int, ignore_index: int | None = 255) -> np.ndarray:
    """An index mask [H, W] as an RGB image [H, W, 3] uint8 (ignored and out-of-range pixels white)."""
    colors = palette(256)
    rgb = colors[np.clip(mask, 0, 255).astype(np.uint8)]
    rgb[(mask < 0) | (mask >= num_classes)] = IGNORE_COLOR
    return rgb


# The overlay's float arithmetic took about 80 bytes a pixel, 9 GB for a 108-megapixel photo: it is done in bands
# of this many rows (every step is per pixel, so the bands give the same picture).
OVERLAY_ROWS = 256


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.65,
            ignore_index: int | None = 255) -> np.ndarray:
    """The coloured mask over a dimmed grey copy of an RGB uint8 image of the same size.

    The image is shown in grey so the class colours cannot be confused with the objects' own colours; background
    (class 0) is left unpainted, ignored pixels are white.
    """
    out = np.empty((*mask.shape[:2], 3), np.uint8)
    for top in range(0, mask.shape[0], OVERLAY_ROWS):
        rows = slice(top, top + OVERLAY_ROWS)
        out[rows] = _overlay_band(image[rows], mask[rows], num_classes, alpha, ignore_index)
    return out


def _overlay_band(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float,
                  ignore_index: int | None) -> np.ndarray:
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((0.35 * 255 + 0.5 * grey)[..., None], 3, axis=2)
    rgb = colorize(mask, num_classes, ignore_index).astype(np.float32)
    painted = mask != 0
    out[painted] = (1 - alpha) * out[painted] + alpha * rgb[painted]
    return out.round().clip(0, 255).astype(np.uint8)


def to_display(image: np.ndarray) -> np.ndarray:
    """Any HxWxC (C 1 or 3, uint8 or uint16) image as RGB uint8 for display; 16-bit is contrast-stretched."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype != np.uint8:
        low, high = np.percentile(image, (0.5, 99.5))
        image = ((image.astype(np.float32) - low) / max(high - low, 1e-6) * 255).clip(0, 255).astype(np.uint8)
    return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image[..., :3]


def write_prediction(path, image: np.ndarray, pred: np.ndarray, classes: list[str], out: Path,
                     stem: str | None = None) -> dict:
    """Write OUT/STEM.png (palette index mask) and OUT/overlays/STEM.png for one predicted image; the result dict
    has path, mask, overlay, class_fractions {class: share of pixels} and a one-line summary.

    Overlays go to a subfolder so OUT holds only masks: `evaluate --gt TRUTH --predictions OUT` can score it as is.
    """
    from pixelforge.data.masks.images import save_mask

    stem = stem or Path(path).stem
    out.mkdir(parents=True, exist_ok=True)
    mask_path = save_mask(pred.astype(np.uint8), out / f"{stem}.png")
    overlay_path = out / "overlays" / f"{stem}.png"
    overlay_path.parent.mkdir(exist_ok=True)
    Image.fromarray(overlay(to_display(image), pred, len(classes))).save(overlay_path)
    counts = np.bincount(pred.reshape(-1), minlength=len(classes))
    fractions = {c: round(float(n / pred.size), 6) for c, n in zip(classes, counts)}
    ranked = sorted(fractions.items(), key=lambda item: -item[1])
    summary = ", ".join(f"{name} {100 * share:.1f}%" for name, share in ranked if share > 0)
    return {"path": str(path), "mask": str(mask_path), "overlay": str(overlay_path), "class_fractions": fractions,
            "summary": summary}


class BitDepthError(PixelforgeError):
    """An image of another bit depth than the model was trained on (the server answers 422)."""

    status_code = 422


def check_bit_depth(image: np.ndarray, trained: int, name) -> None:
    """Refuse an 8-bit image for a model trained on 16-bit images.

    Pixels are scaled to [0, 1] by their bit depth, so a 16-bit image fed to an 8-bit model is the same scene at
    finer steps: well defined, accepted. The other way is not: 16-bit training images rarely fill the 16-bit range
    (a 12-bit sensor, a microscope's few thousand counts), so an 8-bit image scaled by 1/255 lands far from
    anything the model saw and its masks are nonsense. There is no conversion we could know; the user's is.
    """
    depth = 16 if image.dtype == np.uint16 else 8
    if trained > 8 and depth == 8:
        raise BitDepthError(f"{name}: an 8-bit image, but this model was trained on {trained}-bit images, whose "
                            "pixel values mean something else; convert it to 16-bit the way the training images "
                            "were made (e.g. the same camera export) and predict again")


def predict_files(paths: list, out: Path, classes: list[str], predict, bit_depth: int = 8) -> list[dict]:
    """`predict(image array) -> mask` for every image in `paths` (files, folders, globs), writing each mask and
    overlay to `out`; an unreadable image, or an 8-bit one for a model trained on 16-bit images (`bit_depth`),
    gets {"path", "error"}. Shared by runs and packages (no torch here)."""
    from pixelforge.data.images import ImageReadError
    from pixelforge.data.masks.images import load_image_any
    from pixelforge.data.sources import collect_paths, output_stems

    files = collect_paths(list(paths))
    if not files:
        raise PixelforgeError(f"no images found in {', '.join(map(str, paths))}")
    results = []
    for path, stem in zip(files, output_stems(files)):  # ants/1.jpg and bees/1.jpg: 1.png and 1-2.png, none lost
        try:
            image = load_image_any(path)
            check_bit_depth(image, bit_depth, path)
        except (ImageReadError, BitDepthError) as exc:
            results.append({"path": str(path), "error": str(exc)})
            continue
        results.append(write_prediction(path, image, predict(image), classes, Path(out), stem))
    return results
