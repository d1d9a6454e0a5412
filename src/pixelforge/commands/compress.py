"""`pixelforge compress RUN IMAGE --out FILE.pfc` and `pixelforge decompress RUN FILE.pfc --out IMAGE.png`.

RUN is a compression run folder (PyTorch transforms) or a package from `pixelforge export` (ONNX transforms, no
torch); both code with the run's frozen CDF tables and CompressAI's rANS coder (deploy/runtime/learned_codec.py),
so a file written by one decodes with the other. Outputs are written atomically and never overwritten.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from pixelforge.errors import PixelforgeError


def load_codec(run: Path, refine: int = 0, refine_lr: float | None = None):
    """(encode(pixels) -> bytes, decode(bytes, name) -> pixels) for a run folder or a package.

    `refine` > 0: the encoder refines each image's latents for that many steps (tasks/compress/refine.py); it needs
    the run folder's PyTorch model, so a package refuses it.
    """
    from pixelforge.deploy.runtime.package import is_package

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


def compress_command(
    run: Path = typer.Argument(..., help="Compression run folder, or a package from `pixelforge export`."),
    image: Path = typer.Argument(..., help="Image file to compress (any format Pillow reads; coded as 8-bit RGB)."),
    out: Path = typer.Option(..., "--out", help="The .pfc file to write (must not exist)."),
    refine: int = typer.Option(0, "--refine", min=0, help="Steps of latent refinement (SGA) for this image: fewer "
                               "bits for the same quality, the same decoder; slower to encode, needs the run "
                               "folder (torch). 0: the encoder's latents."),
    refine_lr: Optional[float] = typer.Option(None, "--refine-lr", min=1e-6, help="Adam learning rate of the "
                                              "refinement (default 0.08)."),
) -> None:
    """Compress an image into a .pfc file; prints its size and bits per pixel (the file's bits / pixels)."""
    import time

    from pixelforge.data.images import load_rgb
    from pixelforge.runs.folder import new_output_file

    new_output_file(out)  # before the encoding, which takes a while with --refine
    pixels = np.asarray(load_rgb(image))
    encode, _ = load_codec(run, refine, refine_lr)
    cpu = time.process_time()
    data = encode(pixels)
    cpu = time.process_time() - cpu
    _write_new(out, data)
    height, width = pixels.shape[:2]
    refined = f", {refine} refinement steps" if refine else ""
    typer.echo(f"{out}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp ({width}x{height}; "
               f"encoded in {cpu:.2f} CPU-s{refined})")


def decompress_command(
    run: Path = typer.Argument(..., help="The run folder or package that wrote the file."),
    file: Path = typer.Argument(..., help="A .pfc file written by `pixelforge compress`."),
    out: Path = typer.Option(..., "--out", help="The PNG to write (must not exist)."),
) -> None:
    """Decode a .pfc file into a PNG (8-bit RGB, the original's size)."""
    from PIL import Image

    from pixelforge.runs.folder import new_output_file

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
    typer.echo(f"{out}: {pixels.shape[1]}x{pixels.shape[0]}")
