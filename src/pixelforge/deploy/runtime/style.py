"""The style-transfer runtime: a fast style network's ONNX package (tasks/style/export.py), without torch.

The model takes [1, 3, H, W] float32 in [0, 1] with H and W multiples of 4 (dynamic axes) and returns the stylized
image in [0, 1] at the same size; images are reflect-padded to a multiple of 4 and cropped back, and shrunk first
when their longer side exceeds the package's `max_side`.

For video, `predict_frame` can blend each output with the previous one where the input did not change (a
static background): `blend` is the weight of the previous output on unchanged pixels, falling to 0 where the
input changed by 10% or more, so moving things do not leave trails. `video_summary` reports the flicker: the mean
absolute change between consecutive output frames divided by that of the input frames (1 = as steady as the
input; the frame-by-frame network alone is usually well above 1).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.dense import DenseRuntime, as_array
from pixelforge.deploy.runtime.padding import MIN_SIDE, pad_to_multiple
from pixelforge.errors import PixelforgeError


# The longer side a photo is shrunk to before the network (an export's default `max_side`, and `predict RUN`'s cap):
# the network works at full resolution, and a 24-megapixel photo at full size needs tens of GB.
MAX_SIDE = 1024


def shrink_to_max_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """HxWx3 uint8, its longer side shrunk to `max_side` (Lanczos) when longer; as it is otherwise."""
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        size = (max(4, round(image.shape[1] * scale)), max(4, round(image.shape[0] * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    return image


def stylize_array(run, image: np.ndarray, max_side: int | None = None) -> np.ndarray:
    """HxWx3 uint8 -> stylized HxWx3 uint8 with `run(x [1,3,H,W]) -> [1,3,H,W]` (an ONNX session's call)."""
    image = shrink_to_max_side(image, max_side)
    height, width = image.shape[:2]
    x = pad_to_multiple(image.astype(np.float32) / 255.0, min_side=MIN_SIDE).transpose(2, 0, 1)[None]
    out = run(np.ascontiguousarray(x))[0].transpose(1, 2, 0)[:height, :width]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


class StyleRuntime(DenseRuntime):
    """A style package ready to stylize."""

    task = "style"
    output_key = "stylized"
    title = "Style transfer"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._threads = args[2] if len(args) > 2 else kwargs.get("threads")
        self._arbitrary = None  # Magenta's networks, loaded on the first arbitrary-style request
        self._previous = None  # (input frame float, output frame float) for video blending
        self._changes = [0.0, 0.0, 0]  # sum |Δ output|, sum |Δ input|, pairs of frames

    def colors(self) -> dict[str, str]:
        return {}

    def _run(self, x: np.ndarray) -> np.ndarray:
        manifest = self.package.manifest
        return self.session.run([manifest["output_name"]], {manifest["input_name"]: x})[0]

    def predict_images(self, images: list) -> list[dict]:
        max_side = self.package.preprocess.get("max_side")
        results = []
        for image in images:
            array = as_array(image)
            array = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array[..., :3]
            results.append({"image": stylize_array(self._run, array.astype(np.uint8), max_side)})
        return results

    def predict_files(self, paths: list, out: str | Path | None = None, *, progress=None, **options) -> list[dict]:
        """Each image stylized into `out` as NAME_stylized.png (existing files are never overwritten)."""
        from pixelforge.data.images import load_rgb
        from pixelforge.data.sources import output_stems

        self.reject_options("predict", options)
        out = self.output_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for path, stem in zip(paths, output_stems(paths)):
            target = out / f"{stem}_stylized.png"
            try:
                if target.exists():
                    raise PixelforgeError(f"{target}: already exists; choose a new --out")
                stylized = self.predict_images([np.asarray(load_rgb(path))])[0]["image"]
            except PixelforgeError as exc:
                results.append({"path": str(path), "error": str(exc)})
                continue
            Image.fromarray(stylized).save(target)
            results.append({"path": str(path), "stylized": str(target), "summary": f"stylized -> {target}"})
            if progress is not None:
                progress(1)
        return self.with_common_keys(results)

    # ---- serving -------------------------------------------------------------------------------------------
    def answer(self, image: Image.Image, output: dict, **options) -> dict:
        buffer = io.BytesIO()
        Image.fromarray(output["image"]).save(buffer, format="PNG")
        height, width = output["image"].shape[:2]
        return {"task": self.task, "width": image.size[0], "height": image.size[1], "stylized_width": width,
                "stylized_height": height, "image_png": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def stylize_answer(self, image: Image.Image, style: Image.Image | str | None = None) -> dict:
        """`POST /v1/stylize`: the photo in the package's style (`style` None), in the style of another image
        (arbitrary: Magenta's network, no training), or in a built-in style spec (`7`, `3:0.5,12:0.5`)."""
        if style is None:
            answer = self.answer(image, self.predict_images([image])[0])
            return {**answer, "style": "package"}
        from pixelforge.deploy.runtime.arbitrary import ArbitraryStylizer

        if self._arbitrary is None:
            self._arbitrary = ArbitraryStylizer(self._threads)
        content = np.asarray(image.convert("RGB"))
        max_side = self.package.preprocess.get("max_side")
        if max_side and max(content.shape[:2]) > max_side:  # the same cap as the package's own network
            small = image.convert("RGB")
            small.thumbnail((max_side, max_side), Image.LANCZOS)
            content = np.asarray(small)
        style_input = style if isinstance(style, str) else np.asarray(style.convert("RGB"))
        answer = self.answer(image, {"image": self._arbitrary.stylize(content, style_input)})
        return {**answer, "style": f"built-in {style}" if isinstance(style, str) else "arbitrary"}

    # ---- video ---------------------------------------------------------------------------------------------
    def predict_frame(self, frame: np.ndarray, blend: float = 0.0, **options) -> dict:
        """{"frame": the stylized BGR frame}, blended with the previous output on unchanged pixels (`blend`)."""
        rgb = np.ascontiguousarray(frame[..., ::-1])
        stylized = self.predict_images([rgb])[0]["image"].astype(np.float32)
        if stylized.shape[:2] != frame.shape[:2]:  # shrunk to max_side: back to the frame's size
            stylized = np.asarray(Image.fromarray(stylized.astype(np.uint8)).resize(frame.shape[1::-1], Image.BILINEAR),
                                  dtype=np.float32)
        current = rgb.astype(np.float32)
        if self._previous is not None:
            before_in, before_out = self._previous
            changed = np.abs(current - before_in).mean(axis=2, keepdims=True) / 255.0
            if blend > 0:
                weight = blend * np.clip(1.0 - changed / 0.1, 0.0, 1.0)
                stylized = weight * before_out + (1.0 - weight) * stylized
            self._changes[0] += float(np.abs(stylized - before_out).mean())
            self._changes[1] += float(np.abs(current - before_in).mean())
            self._changes[2] += 1
        self._previous = (current, stylized)
        return {"frame": np.clip(stylized[..., ::-1] + 0.5, 0, 255).astype(np.uint8)}

    def describe(self, prediction: dict) -> str:
        return "stylized"

    def draw(self, frame: np.ndarray, prediction: dict, text: str, fps: float) -> np.ndarray:
        return prediction["frame"]  # the stylized frame itself; an overlay would spoil the picture

    def video_summary(self) -> dict:
        """{"flicker": output change / input change between consecutive frames, and both means (0-255 scale)}."""
        out_sum, in_sum, pairs = self._changes
        if not pairs:
            return {}
        return {"flicker": out_sum / max(in_sum, 1e-6), "output_change": out_sum / pairs, "input_change": in_sum / pairs}
