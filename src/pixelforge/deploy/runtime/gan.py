"""The image-generation runtime: a GAN package's generator on ONNX Runtime, noise from numpy, no torch.

A GAN package (tasks/gan/export.py) holds the EMA generator with inputs `z` float32 [N, latent_dim] (and `labels`
int64 [N] for a class-conditional model) and output `image` float32 [N, C, S, S] in [-1, 1]. The noise is numpy's
`default_rng(seed).standard_normal`, so a seed gives the same images on every machine with this runtime (not the
same images as `pixelforge generate RUN`, whose noise is torch's); the exporter's parity check feeds this noise to
both ONNX Runtime and PyTorch.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from pixelforge.deploy.runtime.base import TaskRuntime
from pixelforge.deploy.runtime.package import DensePackage, read_dense_package
from pixelforge.deploy.runtime.preprocess import UploadError
from pixelforge.deploy.runtime.session import onnx_session
from pixelforge.errors import PixelforgeError

MAX_IMAGES = 256  # per request of the web page / API


class NoUploadsTaken(UploadError):
    """An upload to a generator's /v1/predict: the server answers 404 with the route that generates."""

    status_code = 404


def sample_noise(n: int, latent_dim: int, seed: int, truncation: float | None = None) -> np.ndarray:
    """Standard normal noise [n, latent_dim] float32 from numpy's seeded generator; with `truncation` T the values
    beyond +-T are drawn again (the truncation trick)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent_dim), dtype=np.float32)
    if truncation is not None:
        for _ in range(100):
            outside = np.abs(z) > truncation
            if not outside.any():
                break
            z[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32)
    return z


def to_uint8(images: np.ndarray) -> list[np.ndarray]:
    """[N, C, S, S] in [-1, 1] -> HxW (grey) or HxWx3 uint8 arrays."""
    arrays = np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)
    return [a[..., 0] if a.shape[2] == 1 else a for a in arrays]


def grid_scale(side: int) -> int:
    """How many times a grid of `side`-px images is enlarged (nearest) so that 32 px samples are legible; the run's
    grids and a package's share it, so `generate PACKAGE` writes the grid `generate RUN` does."""
    return max(1, 256 // max(1, side * 4) + (1 if side <= 32 else 0))


def tile(images: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Equal-size uint8 images in rows of `columns`, `gap` white pixels between and around them (the grid of a run's
    samples, as torchvision's `make_grid` lays it out).

    By hand rather than `make_grid`, which the run side uses: this runtime never imports torch."""
    height, width = images[0].shape[:2]
    rows = -(-len(images) // columns)
    grid = np.full((rows * (height + gap) + gap, columns * (width + gap) + gap, *images[0].shape[2:]), 255, np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (height + gap), gap + (i % columns) * (width + gap)
        grid[top:top + height, left:left + width] = image
    return grid


class GANRuntime(TaskRuntime):
    """A GAN package ready to generate (it has no input images: `predict` is not available)."""

    task = "gan"
    title = "Image generation (GAN)"
    hidden_settings = ("max_batch", "max_wait_ms", "max_bytes", "max_pixels", "max_files", "top_k", "score_threshold")

    def __init__(self, package: str | Path | DensePackage, precision: str | None = None, threads: int | None = None,
                 providers: list[str] | None = None, spin: bool = True, loaders=None):
        self.package = package if isinstance(package, DensePackage) else read_dense_package(package)
        self.classes = self.package.classes
        self.precision = precision or "fp32"
        self.session = onnx_session(self.package.model_path(self.precision), threads, providers, spin)
        self.providers = self.session.get_providers()
        self.conditional = bool(self.package.preprocess["conditional"])
        self.latent_dim = int(self.package.preprocess["latent_dim"])

    def class_index(self, wanted) -> int | None:
        if wanted is None or wanted == "":
            return None
        if not self.conditional:
            raise PixelforgeError(f"class {wanted}: this GAN is unconditional")
        text = str(wanted)
        if text in self.classes:
            return self.classes.index(text)
        if text.isdigit() and int(text) < len(self.classes):
            return int(text)
        raise PixelforgeError(f"class {wanted!r}: not one of {', '.join(self.classes)}")

    def generate(self, n: int, class_name=None, seed: int = 0, truncation: float | None = None) -> dict:
        """{"images": [uint8 arrays], "classes": [class of each] or None}: class `class_name`, else every class in
        turn (conditional), from numpy noise of `seed`."""
        if not 1 <= n <= MAX_IMAGES:
            raise PixelforgeError(f"n {n}: give 1 to {MAX_IMAGES} images")
        if truncation is not None and truncation <= 0:
            raise PixelforgeError(f"truncation {truncation}: give a positive number such as 1.0")
        if seed < 0:  # numpy's generators take none
            raise PixelforgeError(f"seed {seed}: give a whole number from 0 up")
        wanted = self.class_index(class_name)
        manifest = self.package.manifest
        feed = {manifest["input_name"]: sample_noise(n, self.latent_dim, seed, truncation)}
        labels = None
        if self.conditional:
            labels = np.full(n, wanted, np.int64) if wanted is not None else np.arange(n, dtype=np.int64) % len(self.classes)
            feed[manifest["label_input"]] = labels
        images = self.session.run([manifest["output_name"]], feed)[0]
        return {"images": to_uint8(images),
                "classes": [self.classes[int(i)] for i in labels] if labels is not None else None}

    def generate_answer(self, n: int, class_name=None, seed: int = 0, truncation: float | None = None) -> dict:
        """The JSON of POST /v1/generate: base64 PNGs and the class of each."""
        result = self.generate(n, class_name, seed, truncation)
        pngs = []
        for array in result["images"]:
            buffer = io.BytesIO()
            Image.fromarray(array).save(buffer, format="PNG")
            pngs.append(base64.b64encode(buffer.getvalue()).decode())
        return {"task": self.task, "seed": seed, "images_png": pngs, "classes": result["classes"]}

    def generate_folder(self, out: str | Path, n: int, class_name=None, seed: int = 0,
                        truncation: float | None = None) -> dict:
        """`pixelforge generate PACKAGE`: OUT/NNNN[_class].png and OUT/grid.png in a new folder, as for a run.

        Returns {"out", "files", "grid", "classes"}."""
        out = Path(out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise PixelforgeError(f"{out}: exists and is a file or not empty; choose a new --out (nothing is overwritten)")
        result = self.generate(n, class_name, seed, truncation)
        out.mkdir(parents=True, exist_ok=True)
        files = []
        for i, array in enumerate(result["images"]):
            files.append(out / (f"{i:04d}" + (f"_{result['classes'][i]}" if result["classes"] else "") + ".png"))
            Image.fromarray(array).save(files[-1])
        grid = out / "grid.png"
        sheet = Image.fromarray(tile(result["images"], columns=min(10, n)))
        scale = grid_scale(result["images"][0].shape[0])
        sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST).save(grid)
        return {"out": str(out), "files": [str(f) for f in files], "grid": str(grid), "classes": result["classes"]}

    # A generator takes no images: the prediction paths say so in one line.
    def decode_upload(self, data, name, max_pixels):
        raise NoUploadsTaken("a GAN package takes no images: POST /v1/generate?n=16 generates them")

    def predict_images(self, images):
        raise PixelforgeError("a GAN package generates images; it does not predict (use /v1/generate)")

    def predict_files(self, paths, out=None, **options):
        raise PixelforgeError(f"{self.package.folder}: a GAN package generates images, it does not predict them: "
                              f"`pixelforge generate {self.package.folder} --out DIR`")

    def predict_frame(self, frame, **options):
        raise PixelforgeError(f"{self.package.folder}: a GAN package generates images, it takes no video: "
                              f"`pixelforge generate {self.package.folder} --out DIR`")
