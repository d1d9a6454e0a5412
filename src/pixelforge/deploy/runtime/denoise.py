"""The denoising runtime (numpy, Pillow, OpenCV, ONNX Runtime; no torch), and the file handling a run shares.

A denoising package (tasks/denoise/export.py) holds a fully convolutional model: input [1, C, H, W] float in
[0, 1] with H and W any multiples of preprocess.json's "multiple" (32 for the U-Net, 1 for DnCNN), output the
denoised image, same shape. The runtime pads each image by reflection to that multiple, runs the model, crops
back, clips to [0, 1] and rounds to the image's own bit depth: a 16-bit PNG stays 16-bit, a grayscale image stays
grayscale (a colour model sees it repeated to RGB and answers its luminance), and a grey model denoises a colour
image channel by channel.

Serving: an upload is taken as a CLEAN photo; the page's answer adds the package's own noise (seeded by the file
name, `data/noise.py`), denoises it, and returns both pictures with their PSNR against the upload. A photo that is
already noisy has no clean reference to score against, so `predict` is the way to denoise those.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from pixelforge.data.masks.images import match_channels
from pixelforge.data.noise import parse_noise, quantize, rng_for, to_unit
from pixelforge.deploy.runtime.dense import DenseRuntime, as_array
from pixelforge.deploy.runtime.padding import pad_to_multiple
from pixelforge.errors import PixelforgeError

# A denoiser works at full resolution: a 108-megapixel scan took 16 GB with an 8-channel DnCNN. Larger images are
# denoised in TILE x TILE pieces, each with MARGIN pixels of its neighbours around it (cut off again); the default
# DnCNN sees 8 pixels to each side, so its tiles join exactly. Multiples of 32 keep a U-Net's pooling grid in place.
TILE = 1024
MARGIN = 32


def model_input(image: np.ndarray, channels: int, multiple: int) -> np.ndarray:
    """An HxWxC uint8/uint16 image as the float32 [1, channels, H', W'] input (scaled by bit depth, padded)."""
    x = pad_to_multiple(to_unit(match_channels(image, channels)).astype(np.float32), multiple)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def grey_model_on_colour(channels: int, image: np.ndarray) -> bool:
    """Whether a `--channels 1` model is given a colour image: it then denoises each colour channel as a grey
    image (as a grey DnCNN or BM3D is applied to colour), since going through luminance returned the photo grey."""
    return channels == 1 and image.shape[-1] == 3


def model_output(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The model's [1, C, H', W'] output as an image like `like` (its size, channels and bit depth)."""
    height, width = like.shape[:2]
    out = quantize(y[0, :, :height, :width].transpose(1, 2, 0), like.dtype)
    return match_channels(out, like.shape[-1])


def denoise_in_tiles(image: np.ndarray, denoise) -> np.ndarray:
    """`denoise(image)` for an image of at most TILE + 2 x MARGIN pixels a side; a larger one tile by tile, so the
    memory the model needs stays that of one tile whatever the photo's size."""
    height, width = image.shape[:2]
    if max(height, width) <= TILE + 2 * MARGIN:
        return denoise(image)
    out = None
    for top in range(0, height, TILE):
        for left in range(0, width, TILE):
            y0, x0 = max(0, top - MARGIN), max(0, left - MARGIN)
            piece = denoise(image[y0:top + TILE + MARGIN, x0:left + TILE + MARGIN])
            if out is None:
                out = np.empty((height, width, piece.shape[-1]), piece.dtype)
            out[top:top + TILE, left:left + TILE] = piece[top - y0:top - y0 + TILE, left - x0:left - x0 + TILE]
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images of the same dtype (peak: 255 or 65535); the page's number (evaluation uses
    torchmetrics, tests check they agree)."""
    mse = float(np.mean((to_unit(a) - to_unit(b)) ** 2))
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def save_image(image: np.ndarray, path: Path) -> Path:
    """Write HxWxC (C = 1, 3, or 4 with alpha) uint8/uint16 as PNG, 16-bit kept (OpenCV writes 16-bit colour PNGs;
    Pillow cannot)."""
    import cv2

    # OpenCV writes BGR, and BGRA for an image with its alpha
    array = image[..., 0] if image.shape[-1] == 1 else image[..., [2, 1, 0, 3][:image.shape[-1]]]
    ok, data = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise PixelforgeError(f"{path}: could not encode the image as PNG")
    path.write_bytes(data.tobytes())
    return path


def denoise_files(paths: list, out: Path, denoise, progress=None) -> list[dict]:
    """Denoise each file with `denoise(HxWxC array) -> array` and write OUT/STEM.png (never over an existing file),
    with the file's transparency put back unchanged when it has one (a denoised icon stays cut out).

    Files are read as training read them (data.masks.images.load_image_any: 16-bit kept); unreadable ones give a
    result with "error".
    """
    from pixelforge.data.images import read_each
    from pixelforge.data.masks.images import load_alpha, load_image_any
    from pixelforge.data.sources import output_stems

    out = Path(out)
    targets = [out / f"{stem}.png" for stem in output_stems(paths)]  # class folders' two `1.jpg`: 1.png, 1-2.png
    existing = [t for t in targets if t.exists()]
    if existing:
        raise PixelforgeError(f"{existing[0]}: already exists; predictions never overwrite files, choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    results, target_of = [], dict(zip(map(str, paths), targets))
    for path, image in read_each(paths, load_image_any, results):
        target = target_of[str(path)]
        denoised, alpha = denoise_in_tiles(image, denoise), load_alpha(path, image)
        save_image(denoised if alpha is None else with_alpha(denoised, alpha), target)
        results.append({"path": str(path), "output": str(target), "width": image.shape[1], "height": image.shape[0],
                        "bit_depth": 16 if image.dtype == np.uint16 else 8,
                        "summary": f"denoised -> {target} ({image.shape[1]}x{image.shape[0]}, "
                                   f"{16 if image.dtype == np.uint16 else 8}-bit)"})
        if progress is not None:
            progress(1)
    return results


def with_alpha(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """HxWx4: `image` (grey repeated to RGB, as PNG has no grey-with-alpha that OpenCV writes) and its alpha."""
    colour = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return np.concatenate([colour, alpha.astype(colour.dtype)], axis=-1)


def _png_base64(image: np.ndarray) -> str:
    from PIL import Image

    eight = image if image.dtype == np.uint8 else (image // 257).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(eight[..., 0] if eight.shape[-1] == 1 else eight).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class DenoiseRuntime(DenseRuntime):
    """A denoising package ready to denoise images of any size."""

    task = "denoise"
    output_key = "output"
    title = "Image denoising"

    def colors(self) -> dict[str, str]:
        return {}

    def denoise(self, image: np.ndarray) -> np.ndarray:
        pre = self.package.preprocess
        if grey_model_on_colour(pre["channels"], image):
            return np.concatenate([self.denoise(image[..., c:c + 1]) for c in range(3)], axis=-1)
        x = model_input(image, pre["channels"], pre["multiple"])
        y = self.session.run(None, {self.package.manifest["input_name"]: x})[0]
        return model_output(y, image)

    def predict_images(self, images: list) -> list[dict]:
        return [{"image": denoise_in_tiles(as_array(image), self.denoise)} for image in images]

    def predict_files(self, paths: list, out: str | Path | None = None, *, progress=None, **options) -> list[dict]:
        """OUT/STEM.png per image: denoised, same size and bit depth."""
        self.reject_options("predict", options)
        return self.with_common_keys(denoise_files(paths, self.output_folder(out), self.denoise, progress))

    # ---- serving: the upload is the clean reference ----------------------------------------------------------
    def predict_batch(self, inputs: list) -> list:
        noise = parse_noise(self.package.preprocess["noise"])
        outputs = []
        for image in inputs:
            clean = as_array(image)
            noisy = quantize(noise.apply(to_unit(clean), rng_for(0, getattr(image, "filename", "") or "upload")),
                             clean.dtype)
            outputs.append({"noisy": noisy, "denoised": self.denoise(noisy)})
        return outputs

    def answer(self, image, output: dict, **options) -> dict:
        clean = as_array(image)
        return {"task": self.task, "width": clean.shape[1], "height": clean.shape[0],
                "noise": self.package.preprocess["noise"],
                "psnr_noisy": round(psnr(output["noisy"], clean), 3), "psnr": round(psnr(output["denoised"], clean), 3),
                "noisy_png": _png_base64(output["noisy"]), "denoised_png": _png_base64(output["denoised"])}

    # ---- video: each frame denoised as it is -------------------------------------------------------------------
    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        return {"image": self.denoise(np.ascontiguousarray(frame[..., ::-1]))}

    def describe(self, prediction: dict) -> str:
        return "denoised"

    def draw(self, frame: np.ndarray, prediction: dict, text: str, fps: float) -> np.ndarray:
        frame[...] = prediction["image"][..., ::-1]
        return frame

    @staticmethod
    def describe_result(result: dict) -> str:
        return result.get("error") or result.get("summary") or str(result)
