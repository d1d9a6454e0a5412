"""`pixelforge compress RUN IMAGE --out FILE.pfc` and `pixelforge decompress RUN FILE.pfc --out IMAGE.png`.

RUN is a compression run folder (PyTorch transforms) or a package from `pixelforge export` (ONNX transforms, no
torch); both code with the run's frozen CDF tables and CompressAI's rANS coder (deploy/runtime/learned_codec.py),
so a file written by one decodes with the other. Outputs are written atomically and never overwritten.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import typer

from pixelforge.errors import PixelforgeError


def load_codec(run: Path):
    """(encode(pixels) -> bytes, decode(bytes, name) -> pixels) for a run folder or a package."""
    from pixelforge.deploy.runtime.package import is_package

    if is_package(run):
        from pixelforge.deploy.runtime.compress import CompressionRuntime

        runtime = CompressionRuntime(run)
        return runtime.compress, runtime.decompress
    from pixelforge.deploy.runtime.learned_codec import compress_pixels, decompress_bytes
    from pixelforge.tasks.compress.tables import load_trained, torch_transforms

    _, _, model, codec = load_trained(run)
    transforms = torch_transforms(model)
    return (lambda pixels: compress_pixels(pixels, codec, transforms),
            lambda data, name: decompress_bytes(data, codec, transforms, name))


def _write_new(path: Path, data: bytes) -> None:
    from pixelforge.runs.folder import atomic_write_bytes

    if path.exists():
        raise PixelforgeError(f"{path}: already exists; outputs are never overwritten, choose another --out")
    atomic_write_bytes(path, lambda handle: handle.write(data))


def compress_command(
    run: Path = typer.Argument(..., help="Compression run folder, or a package from `pixelforge export`."),
    image: Path = typer.Argument(..., help="Image file to compress (any format Pillow reads; coded as 8-bit RGB)."),
    out: Path = typer.Option(..., "--out", help="The .pfc file to write (must not exist)."),
) -> None:
    """Compress an image into a .pfc file; prints its size and bits per pixel (the file's bits / pixels)."""
    from pixelforge.data.images import load_rgb

    pixels = np.asarray(load_rgb(image))
    encode, _ = load_codec(run)
    data = encode(pixels)
    _write_new(out, data)
    height, width = pixels.shape[:2]
    typer.echo(f"{out}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp ({width}x{height})")


def decompress_command(
    run: Path = typer.Argument(..., help="The run folder or package that wrote the file."),
    file: Path = typer.Argument(..., help="A .pfc file written by `pixelforge compress`."),
    out: Path = typer.Option(..., "--out", help="The PNG to write (must not exist)."),
) -> None:
    """Decode a .pfc file into a PNG (8-bit RGB, the original's size)."""
    from PIL import Image

    if not file.is_file():
        raise PixelforgeError(f"{file}: no such file")
    _, decode = load_codec(run)
    pixels = decode(file.read_bytes(), str(file))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    _write_new(out, buffer.getvalue())
    typer.echo(f"{out}: {pixels.shape[1]}x{pixels.shape[0]}")
