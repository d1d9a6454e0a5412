"""`pixelforge compress RUN IMAGE --out FILE.pfc` and `pixelforge decompress RUN FILE.pfc --out IMAGE.png`.

RUN is a compression run folder (PyTorch transforms) or a package from `pixelforge export` (ONNX transforms, no
torch); both code with the run's frozen CDF tables and CompressAI's rANS coder (deploy/runtime/learned_codec.py),
so a file written by one decodes with the other. Outputs are written atomically and never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

# The work is in api/compress.py (`pixelforge.compress`, `pixelforge.decompress`); load_codec stays importable here.
from pixelforge.api.compress import load_codec

__all__ = ["compress_command", "decompress_command", "load_codec"]


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
    from pixelforge.api.compress import compress

    done = compress(run, image, out, refine=refine, refine_lr=refine_lr)
    refined = f", {refine} refinement steps" if refine else ""
    typer.echo(f"{out}: {done['bytes']} bytes, {done['bpp']:.4f} bpp ({done['width']}x{done['height']}; "
               f"encoded in {done['cpu_seconds']:.2f} CPU-s{refined})")


def decompress_command(
    run: Path = typer.Argument(..., help="The run folder or package that wrote the file."),
    file: Path = typer.Argument(..., help="A .pfc file written by `pixelforge compress`."),
    out: Path = typer.Option(..., "--out", help="The PNG to write (must not exist)."),
) -> None:
    """Decode a .pfc file into a PNG (8-bit RGB, the original's size)."""
    from pixelforge.api.compress import decompress

    done = decompress(run, file, out)
    typer.echo(f"{out}: {done['width']}x{done['height']}")
