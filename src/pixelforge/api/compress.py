"""`pixelforge.compress` and `pixelforge.decompress`: an image into a .pfc file and back (what `pixelforge compress`
and `pixelforge decompress` run).

RUN is a compression run folder (PyTorch transforms) or a package from `pixelforge export` (ONNX transforms, no
torch); both code with the run's frozen CDF tables and CompressAI's rANS coder (deploy/runtime/learned_codec.py),
so a file written by one decodes with the other. Outputs are written atomically and never overwritten.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pixelforge.errors import PixelforgeError


def load_codec(run: str | Path, refine: int = 0, refine_lr: float | None = None):
    """(encode(pixels) -> bytes, decode(bytes, name) -> pixels) for a run folder or a package.

    `refine` > 0: the encoder refines each image's latents for that many steps (tasks/compress/refine.py); it needs
    the run folder's PyTorch model, so a package refuses it.

    Example:
        >>> encode, decode = load_codec("runs/compress")  # doctest: +SKIP
        >>> decode(encode(pixels), "photo.pfc").shape  # doctest: +SKIP
        (64, 96, 3)
    """
    from pixelforge.deploy.runtime.package import is_package

    run = Path(run)
    if is_package(run):
        if refine or refine_lr is not None:  # checked here, not by make_refiner: a package's path never imports torch
            raise PixelforgeError(f"{run}: --refine needs torch autograd and the run folder's model; give the run "
                                  f"folder (a package decodes the refined files as usual)")
        from pixelforge.deploy.runtime.compress import CompressionRuntime

        runtime = CompressionRuntime(run)
        return runtime.compress, runtime.decompress
    from pixelforge.deploy.runtime.learned_codec import compress_pixels, decompress_bytes
    from pixelforge.tasks.compress.refine import make_refiner
    from pixelforge.tasks.compress.tables import load_trained, torch_transforms

    _, cfg, model, codec = load_trained(run)
    transforms = torch_transforms(model)
    refiner = make_refiner(model, cfg.lambda_, refine, refine_lr)
    return (lambda pixels: compress_pixels(pixels, codec, transforms, refine=refiner),
            lambda data, name: decompress_bytes(data, codec, transforms, name))


def _write_new(path: Path, data: bytes) -> None:
    from pixelforge.runs.folder import atomic_write_bytes, new_output_file

    atomic_write_bytes(new_output_file(path), lambda handle: handle.write(data))  # checked again: it may have appeared


def compress(run: str | Path, image: str | Path, out: str | Path, refine: int = 0,
             refine_lr: float | None = None) -> dict:
    """Compress `image` into the .pfc file `out` (must not exist) with a compression run or its package.

    `refine`: steps of latent refinement (SGA) for this image, fewer bits for the same quality and the same decoder
    (slower to encode; needs the run folder); `refine_lr`: its Adam learning rate (default 0.08). Returns what
    `pixelforge compress` prints: {"out", "bytes", "bpp" (the file's bits / pixels), "width", "height",
    "cpu_seconds" (the encoding's), "refine"}.

    Example:
        >>> compress("runs/compress", "photo.png", "photo.pfc")["bpp"]  # doctest: +SKIP
        0.4127
    """
    import time

    from pixelforge.data.images import load_rgb
    from pixelforge.runs.folder import new_output_file

    if refine < 0:
        raise PixelforgeError(f"--refine {refine}: give a number of steps, 0 or more")
    out = Path(out)
    new_output_file(out)  # before the encoding, which takes a while with --refine
    pixels = np.asarray(load_rgb(Path(image)))
    encode, _ = load_codec(run, refine, refine_lr)
    cpu = time.process_time()
    data = encode(pixels)
    cpu = time.process_time() - cpu
    _write_new(out, data)
    height, width = pixels.shape[:2]
    return {"out": str(out), "bytes": len(data), "bpp": 8 * len(data) / (height * width), "width": width,
            "height": height, "cpu_seconds": cpu, "refine": refine}


def decompress(run: str | Path, file: str | Path, out: str | Path) -> dict:
    """Decode the .pfc file `file` into the PNG `out` (8-bit RGB, the original's size; must not exist) with the run
    folder or package that wrote it. Returns what `pixelforge decompress` prints: {"out", "width", "height"}.

    Example:
        >>> decompress("runs/compress", "photo.pfc", "photo-decoded.png")["width"]  # doctest: +SKIP
        96
    """
    from PIL import Image

    from pixelforge.runs.folder import new_output_file

    file, out = Path(file), Path(out)
    # The output is always PNG (lossless, the round trip's bits); `--out x.jpg` wrote PNG bytes under a JPEG name.
    if out.suffix.lower() in set(Image.registered_extensions()) - {".png"}:
        raise PixelforgeError(f"{out}: decompress writes a PNG (lossless); name the output .png")
    new_output_file(out)
    if not file.is_file():
        raise PixelforgeError(f"{file}: no such file")
    _, decode = load_codec(run)
    pixels = decode(file.read_bytes(), str(file))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    _write_new(out, buffer.getvalue())
    return {"out": str(out), "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}
