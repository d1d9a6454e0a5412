"""Encoding and decoding `.pfc` files with a learned codec: the model's transforms (any backend) + frozen tables.

The same functions serve the run folder (PyTorch transforms, tasks/compress/) and the package (ONNX transforms,
compress.py), so both write and read the same files. The steps are CompressAI's `compress`/`decompress` of
`FactorizedPrior` and `ScaleHyperprior` (Ballé et al. 2017, 2018), written over numpy arrays:

    factorized  y = g_a(x); y -> symbols round(y - median_c) coded with channel c's CDF; x̂ = g_s(ŷ)
    hyperprior  z = h_a(|y|) coded as above; σ = h_s(ẑ); y -> round(y) coded with the CDF of the scale-table
                entry that σ falls in (GaussianConditional.build_indexes); x̂ = g_s(ŷ)

Example:
    >>> codec = FrozenCodec.load("RUN/codec.npz")  # doctest: +SKIP
    >>> data = compress_pixels(pixels, codec, transforms); decompress_bytes(data, codec, transforms).shape  # doctest: +SKIP
    (512, 512, 3)
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import pixelforge.deploy.runtime.rans as rans
from pixelforge.deploy.runtime.codec_tiles import (COMPRESSAI_G_A, COMPRESSAI_G_S, Layer, analyse_in_tiles,
                                                   synthesise_in_tiles)
from pixelforge.deploy.runtime.pfc import PfcError, PfcFile, parse_pfc
from pixelforge.errors import PixelforgeError

Transform = Callable[[np.ndarray], np.ndarray]  # float32 NCHW -> float32 NCHW
MULTIPLE = {"factorized": 16, "hyperprior": 64}  # y is 1/16 of the image; z (hyperprior) 1/64


@dataclass
class Transforms:
    g_a: Transform  # analysis: image -> y
    g_s: Transform  # synthesis: ŷ -> image
    h_a: Transform | None = None  # hyper analysis: y -> z (|y| taken inside, as ScaleHyperprior does)
    h_s: Transform | None = None  # hyper synthesis: ẑ -> σ
    # The spatial layers of g_a and g_s (codec_tiles.py): large images run them tile by tile with margins computed
    # from these; None runs them on the whole image. A package's ONNX transforms are CompressAI's, as the run's.
    g_a_layers: tuple[Layer, ...] | None = COMPRESSAI_G_A
    g_s_layers: tuple[Layer, ...] | None = COMPRESSAI_G_S


@dataclass
class FrozenCodec:
    """A trained model's entropy parameters, frozen as integers (plus the medians and the scale table)."""

    kind: str
    bottleneck: rans.CdfTables  # EntropyBottleneck: one CDF per channel of y (factorized) or z (hyperprior)
    medians: np.ndarray  # float32 [C]
    conditional: rans.CdfTables | None = None  # GaussianConditional: one CDF per scale-table entry
    scale_table: np.ndarray | None = None  # float32, ascending
    scale_bound: float = 0.11  # GaussianConditional's lower bound on σ

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"kind": np.frombuffer(self.kind.encode(), dtype=np.uint8), "eb_cdf": self.bottleneck.cdf,
               "eb_lengths": self.bottleneck.lengths, "eb_offsets": self.bottleneck.offsets, "medians": self.medians}
        if self.conditional is not None:
            out.update(gc_cdf=self.conditional.cdf, gc_lengths=self.conditional.lengths,
                       gc_offsets=self.conditional.offsets, scale_table=self.scale_table,
                       scale_bound=np.float32([self.scale_bound]))
        return out

    @property
    def model_id(self) -> bytes:
        """8 bytes that name these tables: a file records it, and only the same tables decode it."""
        digest = hashlib.sha256()
        for key, value in sorted(self.arrays().items()):
            digest.update(key.encode() + np.ascontiguousarray(value).tobytes())
        return digest.digest()[:8]

    def save(self, path: Path) -> None:
        np.savez(path, **self.arrays())

    @classmethod
    def load(cls, path: str | Path) -> "FrozenCodec":
        try:
            with np.load(path) as f:
                a = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise PixelforgeError(f"{path}: not a readable codec table file ({exc})") from None
        conditional = rans.CdfTables(a["gc_cdf"], a["gc_lengths"], a["gc_offsets"]) if "gc_cdf" in a else None
        return cls(bytes(a["kind"]).decode(), rans.CdfTables(a["eb_cdf"], a["eb_lengths"], a["eb_offsets"]),
                   a["medians"].astype(np.float32), conditional,
                   a["scale_table"].astype(np.float32) if "scale_table" in a else None,
                   float(a["scale_bound"][0]) if "scale_bound" in a else 0.11)


def channel_indexes(shape: tuple) -> np.ndarray:
    """EntropyBottleneck's indexes: each element of a [1, C, h, w] latent uses its channel's CDF."""
    return np.broadcast_to(np.arange(shape[1], dtype=np.int32)[None, :, None, None], shape).copy()


def scale_indexes(scales: np.ndarray, table: np.ndarray, bound: float) -> np.ndarray:
    """GaussianConditional.build_indexes: the index of the first table entry ≥ σ (σ bounded below), else the last."""
    scales = np.maximum(scales, np.float32(bound))
    indexes = np.full(scales.shape, len(table) - 1, dtype=np.int32)
    for s in table[:-1]:
        indexes -= (scales <= s).astype(np.int32)
    return indexes


def _symbols_crc(*symbols: np.ndarray) -> int:
    crc = 0
    for s in symbols:
        crc = zlib.crc32(np.ascontiguousarray(s, dtype="<i4").tobytes(), crc)
    return crc


# refine(x, y, z, height, width) -> (y, z): latents to code instead of the encoder's (z is None when factorized)
Refiner = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", int, int], tuple]


def pad_pixels(pixels: np.ndarray, kind: str) -> tuple[np.ndarray, int, int]:
    """An 8-bit RGB image [H, W, 3] edge-padded to the model's multiple (still 8-bit), and the rows and columns added."""
    step = MULTIPLE[kind]
    pad_b, pad_r = -pixels.shape[0] % step, -pixels.shape[1] % step
    # Edge padding costs fewer bits than zeros; the decoder crops it away.
    return np.pad(pixels, ((0, pad_b), (0, pad_r), (0, 0)), mode="edge"), pad_b, pad_r


def pad_image(pixels: np.ndarray, kind: str) -> tuple[np.ndarray, int, int]:
    """The model's input for an 8-bit RGB image: float32 [1, 3, H', W'] edge-padded to the model's multiple."""
    padded, pad_b, pad_r = pad_pixels(pixels, kind)
    x = padded.astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), pad_b, pad_r


def compress_pixels(pixels: np.ndarray, codec: FrozenCodec, transforms: Transforms,
                    refine: Refiner | None = None) -> bytes:
    """A `.pfc` file's bytes for an 8-bit RGB image [H, W, 3].

    `refine(x, y, z, height, width) -> (y, z)` may replace the encoder's latents before they are coded (the
    run's latent refinement, tasks/compress/refine.py); the decoder never knows: the file format is the same.
    """
    height, width = pixels.shape[:2]
    padded, pad_b, pad_r = pad_pixels(pixels, codec.kind)
    y = analyse_in_tiles(padded, transforms.g_a, transforms.g_a_layers)  # the whole image's y, up to float rounding
    z = transforms.h_a(y) if codec.kind == "hyperprior" else None  # on the latent: 1/16 of the image a side
    if refine is not None:
        y, z = refine(pad_image(pixels, codec.kind)[0], y, z, height, width)
    return PfcFile(codec.kind, codec.model_id, height, width, pad_b, pad_r, *code_latents(y, z, codec, transforms)
                   ).to_bytes()


def code_latents(y: np.ndarray, z: np.ndarray | None, codec: FrozenCodec, transforms: Transforms
                 ) -> tuple[tuple[bytes, ...], int]:
    """The rANS strings of the latents (rounded here) and the CRC of their integer symbols."""
    if codec.kind == "factorized":
        y_sym = np.round(y - codec.medians[None, :, None, None]).astype(np.int32)
        return (rans.encode(y_sym, channel_indexes(y.shape), codec.bottleneck),), _symbols_crc(y_sym)
    z_sym = np.round(z - codec.medians[None, :, None, None]).astype(np.int32)
    z_hat = (z_sym + codec.medians[None, :, None, None]).astype(np.float32)
    indexes = scale_indexes(transforms.h_s(z_hat), codec.scale_table, codec.scale_bound)
    y_sym = np.round(y).astype(np.int32)
    strings = (rans.encode(y_sym, indexes, codec.conditional), rans.encode(z_sym, channel_indexes(z.shape),
                                                                            codec.bottleneck))
    return strings, _symbols_crc(y_sym, z_sym)


def decompress_bytes(data: bytes, codec: FrozenCodec, transforms: Transforms, name: str = "file") -> np.ndarray:
    """The 8-bit RGB image [H, W, 3] of a `.pfc` file's bytes; one-line `PfcError` for a file it cannot decode."""
    pfc = parse_pfc(data, name)
    if pfc.kind != codec.kind or pfc.model_id != codec.model_id:
        raise PfcError(f"{name}: written by another model ({pfc.kind} {pfc.model_id.hex()}); this one is "
                       f"{codec.kind} {codec.model_id.hex()}")
    h, w = (pfc.height + pfc.pad_bottom) // 16, (pfc.width + pfc.pad_right) // 16
    if (pfc.height + pfc.pad_bottom) % MULTIPLE[codec.kind] or (pfc.width + pfc.pad_right) % MULTIPLE[codec.kind]:
        raise PfcError(f"{name}: corrupted .pfc header (padding does not fit the model)")
    channels = len(codec.medians)
    if codec.kind == "factorized":
        y_sym = rans.decode(pfc.strings[0], channel_indexes((1, channels, h, w)), codec.bottleneck)
        y_hat = (y_sym + codec.medians[None, :, None, None]).astype(np.float32)
        crc = _symbols_crc(y_sym)
    else:
        z_sym = rans.decode(pfc.strings[1], channel_indexes((1, channels, h // 4, w // 4)), codec.bottleneck)
        z_hat = (z_sym + codec.medians[None, :, None, None]).astype(np.float32)
        scales = transforms.h_s(z_hat)
        y_sym = rans.decode(pfc.strings[0], scale_indexes(scales, codec.scale_table, codec.scale_bound),
                            codec.conditional)
        y_hat = y_sym.astype(np.float32)
        crc = _symbols_crc(y_sym, z_sym)
    if crc != pfc.symbols_crc:
        raise PfcError(f"{name}: decoded symbols differ from the encoder's (its entropy parameters differ from "
                       f"this decoder's); decode it with the run or package that wrote it")
    return synthesise_in_tiles(y_hat, transforms.g_s, transforms.g_s_layers, pfc.height, pfc.width)
