"""Drawing and encoding predictions: boxes and masks on frames, masks as PNG, class shares.

Shared by the server (JSON answers, palette PNGs the web page overlays) and `pixelforge video` (OpenCV drawing on
BGR frames), so a class has the same colour everywhere: masks use the VOC colour map that `data.masks` writes into
mask PNGs and the evaluation overlays use; boxes use the bright colours of `pixelforge data preview --task detect`.
Torch-free; OpenCV is imported only by the frame-drawing functions.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from pixelforge.data.masks.images import mask_palette
from pixelforge.errors import PixelforgeError

# The detection preview's colours (data/boxes/preview.py), by class index; not imported from there: it needs torch.
BOX_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
              "#469990", "#9a6324", "#800000", "#808000", "#000075"]
BACKGROUND_NAMES = {"background", "_background_", "__background__", "bg"}
IGNORE_INDEX = 255


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5))


def box_color(index: int) -> str:
    """The hex colour of class `index` (position in classes.json) for boxes."""
    return BOX_COLORS[index % len(BOX_COLORS)]


def mask_colors(classes: list[str]) -> dict[str, str]:
    """{class name: hex colour} of each class id in mask PNGs and overlays."""
    palette = mask_palette()
    return {name: _hex(palette[i]) for i, name in enumerate(classes)}


def has_background(classes: list[str]) -> bool:
    """Class 0 is the unpainted background (by name, as in the built-in, VOC and COCO-derived class lists)."""
    return bool(classes) and classes[0].lower() in BACKGROUND_NAMES


def mask_png(mask: np.ndarray, classes: list[str]) -> bytes:
    """A palette PNG of an index mask at its own size: pixel value = class id, colours = the VOC map.

    The background class (when class 0 is one) and ignored pixels (255) are transparent, so a browser can lay the
    PNG straight over the photo; any PNG reader still gets the class ids as the pixel values.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW, got shape {mask.shape}")
    if len(classes) > IGNORE_INDEX:
        raise PixelforgeError(f"{len(classes)} classes do not fit a palette PNG (at most {IGNORE_INDEX}); "
                              f"ask for ?format=rle instead")
    image = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    image.putpalette([value for rgb in mask_palette() for value in rgb])
    alpha = bytearray([255] * 256)
    alpha[IGNORE_INDEX] = 0
    if has_background(classes):
        alpha[0] = 0
    buf = io.BytesIO()
    image.save(buf, "PNG", transparency=bytes(alpha), optimize=False, compress_level=6)
    return buf.getvalue()


def mask_png_base64(mask: np.ndarray, classes: list[str]) -> str:
    return base64.b64encode(mask_png(mask, classes)).decode("ascii")


def class_fractions(mask: np.ndarray, classes: list[str]) -> dict[str, float]:
    """{class: share of the image's pixels}, every class listed (ignored pixels count in no class)."""
    counts = np.bincount(mask.reshape(-1).astype(np.int64).clip(0, IGNORE_INDEX), minlength=max(len(classes), 1))
    total = max(int(mask.size), 1)
    return {name: round(float(counts[i]) / total, 6) for i, name in enumerate(classes)}


def draw_band(frame: np.ndarray, left: str, fps: float) -> np.ndarray:
    """Dim a band at the top of a BGR frame and write `left` and the FPS into it (in place)."""
    import cv2

    height, width = frame.shape[:2]
    scale = max(0.5, width / 900)
    thickness = max(1, int(round(scale * 2)))
    band = int(36 * scale)
    frame[:band] = (frame[:band] * 0.35).astype(frame.dtype)
    text = f"{fps:.1f} FPS"
    (text_width, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.8, thickness)
    room = width - text_width - int(30 * scale)
    while len(left) > 4 and cv2.getTextSize(left, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] > room:
        left = left[:-4].rstrip() + "..."  # narrow frames: shorten the text rather than write over the FPS
    cv2.putText(frame, left, (int(10 * scale), int(band * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)
    cv2.putText(frame, text, (width - text_width - int(10 * scale), int(band * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                scale * 0.8, (120, 230, 120), thickness, cv2.LINE_AA)
    return frame


def draw_boxes(frame: np.ndarray, detections: list[dict], classes: list[str]) -> np.ndarray:
    """Draw [{"box": [x1, y1, x2, y2], "score", "label"}] on a BGR frame (in place): a rectangle per box and
    'label 87%' on a filled tag above it, in the class's colour."""
    import cv2

    height, width = frame.shape[:2]
    font = max(0.35, min(width, height) / 600)  # readable from 96 px clips to 4K frames
    thickness = max(1, int(round(font * 3)))
    index = {name: i for i, name in enumerate(classes)}
    for det in detections:
        x1, y1, x2, y2 = (int(round(v)) for v in det["box"])
        x2, y2 = min(x2, width - 1), min(y2, height - 1)  # a box clipped to the image edge stays visible
        r, g, b = _rgb(box_color(index.get(det["label"], 0)))
        cv2.rectangle(frame, (x1, y1), (x2, y2), (b, g, r), thickness, cv2.LINE_AA)
        text = f"{det['label']} {100 * det['score']:.0f}%"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        tag = th + base + 4
        top = y1 - tag if y1 - tag >= 0 else y1  # inside the box when it touches the top edge
        cv2.rectangle(frame, (x1, top), (x1 + tw + 6, top + tag), (b, g, r), -1)
        cv2.putText(frame, text, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return frame


def blend_mask(frame: np.ndarray, mask: np.ndarray, classes: list[str], alpha: float = 0.5) -> np.ndarray:
    """Blend the class colours of `mask` (HxW, the frame's size) into a BGR frame (in place); background and
    ignored pixels stay as they are."""
    colors = np.asarray(mask_palette(), dtype=np.float32)[:, ::-1]  # RGB -> BGR
    index = np.clip(mask, 0, IGNORE_INDEX).astype(np.uint8)
    painted = index != IGNORE_INDEX
    if has_background(classes):
        painted &= index != 0
    if painted.any():
        pixels = frame[painted].astype(np.float32)
        frame[painted] = ((1 - alpha) * pixels + alpha * colors[index[painted]]).round().astype(frame.dtype)
    return frame


def blend_instances(frame: np.ndarray, detections: list[dict], classes: list[str], alpha: float = 0.5) -> np.ndarray:
    """Blend each detection's bool `mask` in its class's box colour into a BGR frame (in place)."""
    index = {name: i for i, name in enumerate(classes)}
    for det in detections:
        r, g, b = _rgb(box_color(index.get(det["label"], 0)))
        painted = det["mask"]
        frame[painted] = ((1 - alpha) * frame[painted] + alpha * np.float32([b, g, r])).round().astype(frame.dtype)
    return frame


def draw_prediction(frame: np.ndarray, classes: list[str], prediction: dict, text: str, fps: float) -> np.ndarray:
    """A runtime's frame prediction on a BGR frame, in place: what it holds decides what is drawn ("mask": class
    colours, "instance_masks": each object's mask, "detections": boxes), mask colours under the band with `text`
    and the FPS, boxes over it (so a box at the top keeps its label)."""
    if "mask" in prediction:
        blend_mask(frame, prediction["mask"], classes)
    if "instance_masks" in prediction:
        blend_instances(frame, prediction["instance_masks"], classes)
    draw_band(frame, text, fps)
    if "detections" in prediction:
        draw_boxes(frame, prediction["detections"], classes)
    return frame
