"""The torch-free runtime of a learned-compression package: ONNX transforms + frozen CDF tables + CompressAI's rANS.

    PACKAGE/g_a.onnx, g_s.onnx      analysis and synthesis transforms (dynamic height and width)
            h_a.onnx, h_s.onnx      hyperprior only: hyper analysis (|y| inside) and hyper synthesis
            codec.npz               the run's frozen integer CDF tables (learned_codec.FrozenCodec)
            package.json            "task": "compress", the model kind, its model id
            preprocess.json         padding multiple, scaling: how the transforms are fed
            parity.json             the export's check: same symbols and files as the run, pixel differences

Nothing here imports torch: the coder is CompressAI's C++ extension loaded on its own (rans.py).

Example:
    >>> runtime = CompressionRuntime("packages/compress")  # doctest: +SKIP
    >>> data = runtime.compress(pixels); runtime.decompress(data).shape  # doctest: +SKIP
    (512, 512, 3)
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.dense import SERIAL_SETTINGS
from pixelforge.deploy.runtime.learned_codec import FrozenCodec, Transforms, compress_pixels, decompress_bytes
from pixelforge.deploy.runtime.package import DensePackage, read_dense_package
from pixelforge.deploy.runtime.session import ModelLoaders, onnx_session
from pixelforge.errors import PixelforgeError

CODEC_FILE = "codec.npz"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (inf when identical); summed in bands of rows, as integers (exact), since
    float64 copies of a 24-megapixel photo took 1.7 GB, more than the tiled codec itself."""
    total = 0
    for top in range(0, a.shape[0], 256):
        diff = a[top:top + 256].astype(np.int32) - b[top:top + 256].astype(np.int32)
        total += int(np.sum(diff * diff, dtype=np.int64))
    mse = total / a.size
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


class CompressionRuntime(TaskRuntime):
    task = "compress"
    output_key = "file"
    title = "learned image compression"
    hidden_settings = SERIAL_SETTINGS + ("score_threshold", "nms_iou")

    def __init__(self, package: str | Path | DensePackage, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True, loaders: ModelLoaders | None = None):
        self.package = package if isinstance(package, DensePackage) else read_dense_package(package)
        self.classes, self.precision = [], "fp32"
        self.codec = FrozenCodec.load(self.package.folder / CODEC_FILE)
        names = ("g_a", "g_s", "h_a", "h_s") if self.codec.kind == "hyperprior" else ("g_a", "g_s")
        sessions = {n: onnx_session(self.package.folder / f"{n}.onnx", threads, providers, spin) for n in names}
        self.providers = sessions["g_a"].get_providers()

        def forward(session):
            name = session.get_inputs()[0].name
            return lambda x: session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0]

        self.transforms = Transforms(*(forward(sessions[n]) for n in names))

    # ---- the codec ----------------------------------------------------------------------------------------------
    def compress(self, pixels: np.ndarray) -> bytes:
        """A `.pfc` file's bytes for an 8-bit RGB array [H, W, 3]."""
        return compress_pixels(np.asarray(pixels, dtype=np.uint8), self.codec, self.transforms)

    def decompress(self, data: bytes, name: str = "file") -> np.ndarray:
        """The 8-bit RGB array of a `.pfc` file's bytes (one-line PixelforgeError for a file it cannot decode)."""
        return decompress_bytes(data, self.codec, self.transforms, name)

    # ---- serving and files --------------------------------------------------------------------------------------
    def metadata(self) -> dict:
        return {**self.package.metadata(), "model": self.codec.kind, "model_id": self.codec.model_id.hex()}

    def predict_images(self, images: list) -> list[dict]:
        """Compress and decode each image: {"file": bytes, "decoded": array, "bpp", "psnr"}."""
        results = []
        for image in images:
            pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
            data = self.compress(pixels)
            decoded = self.decompress(data)
            results.append({"file": data, "decoded": decoded, "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
                            "psnr": psnr(pixels, decoded)})
        return results

    def answer(self, image, output: dict, **options) -> dict:
        """The web page's before/after: the decoded image as PNG, the file's size, bpp and PSNR."""
        buffer = io.BytesIO()
        Image.fromarray(output["decoded"]).save(buffer, format="PNG")
        height, width = output["decoded"].shape[:2]
        return {"task": self.task, "width": width, "height": height, "bytes": len(output["file"]),
                "bpp": output["bpp"], "psnr": output["psnr"], "decoded_png": base64.b64encode(buffer.getvalue()).decode()}

    def predict_files(self, paths: list, out: str | Path | None = None, *, progress=None, **options) -> list[dict]:
        """`pixelforge predict PACKAGE IMAGES`: writes OUT/<name>.pfc and its decoded OUT/<name>.png per image."""
        from pixelforge.data.images import load_rgb, read_each
        from pixelforge.data.sources import output_stems

        self.reject_options("predict", options)
        out = self.output_folder(out)
        out.mkdir(parents=True, exist_ok=True)
        results, target_of = [], {str(p): out / stem for p, stem in zip(paths, output_stems(paths))}
        for path, image in read_each(paths, load_rgb, results, errors=(PixelforgeError,)):
            pixels = np.asarray(image)
            result = self.predict_images([pixels])[0]
            target = target_of[str(path)]  # a second `1.jpg` (another class folder) is 1-2.pfc, not written over
            target.with_suffix(".pfc").write_bytes(result["file"])
            Image.fromarray(result["decoded"]).save(target.with_suffix(".png"))
            results.append({"path": str(path), "file": str(target.with_suffix(".pfc")),
                            "decoded": str(target.with_suffix(".png")), "bytes": len(result["file"]),
                            "bpp": result["bpp"], "psnr": result["psnr"],
                            "summary": f"{result['bpp']:.3f} bpp, PSNR {result['psnr']:.2f} dB"})
            if progress:
                progress(len(results))
        return self.with_common_keys(results)

    def predict_frame(self, frame: np.ndarray, **options) -> dict:
        return self.predict_images([np.ascontiguousarray(frame[..., ::-1])])[0]

    def describe(self, prediction: dict) -> str:
        return f"{prediction['bpp']:.3f} bpp  PSNR {prediction['psnr']:.2f} dB"

    def draw(self, frame: np.ndarray, prediction: dict, text: str, fps: float) -> np.ndarray:
        frame[:] = prediction["decoded"][..., ::-1]  # the video shows what the decoder restores
        return frame
