"""The `.pfc` file: a small header, then the entropy-coded strings of a learned-compression model.

Layout (little-endian):
    magic      4 bytes  b"\\x89PFC" (the high byte catches 7-bit transfers, as PNG's does)
    version    u8       1
    model      u8       0 factorized | 1 hyperprior
    model id   8 bytes  digest of the model's frozen CDF tables: a file decodes only with the model that wrote it
    height     u32      the image's size (the decoder crops the padding away)
    width      u32
    pad        2 x u16  rows added at the bottom, columns at the right (edge-replicated up to the model's multiple)
    strings    u8       how many strings follow (1: y; hyperprior 2: y, z)
    lengths    u32 each
    symbols    u32      CRC-32 of the decoded integer symbols: a decoder whose entropy parameters differ detects it
    checksum   u32      CRC-32 of everything before it and of the strings: truncation and bit flips are caught
    strings    the rANS strings, in order

The reported bpp is this whole file's size in bits over the image's pixels.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from pixelforge.errors import PixelforgeError

MAGIC = b"\x89PFC"
VERSION = 1
MODEL_KINDS = ("factorized", "hyperprior")
_FIXED = struct.Struct("<4sBB8sIIHHB")


class PfcError(PixelforgeError):
    """A `.pfc` file that cannot be decoded: not one, truncated, corrupted, or written by another model."""


@dataclass(frozen=True)
class PfcFile:
    kind: str
    model_id: bytes
    height: int
    width: int
    pad_bottom: int
    pad_right: int
    strings: tuple[bytes, ...]
    symbols_crc: int

    def to_bytes(self) -> bytes:
        head = _FIXED.pack(MAGIC, VERSION, MODEL_KINDS.index(self.kind), self.model_id, self.height, self.width,
                           self.pad_bottom, self.pad_right, len(self.strings))
        head += struct.pack(f"<{len(self.strings)}II", *(len(s) for s in self.strings), self.symbols_crc)
        body = b"".join(self.strings)
        return head + struct.pack("<I", zlib.crc32(body, zlib.crc32(head))) + body


def parse_pfc(data: bytes, name: str = "file") -> PfcFile:
    """The header and strings of `data`; one-line `PfcError` naming `name` for anything that is not a whole file."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise PfcError(f"{name}: not a .pfc file (wrong magic bytes)")
    if len(data) < _FIXED.size:
        raise PfcError(f"{name}: truncated .pfc file ({len(data)} bytes, shorter than its header)")
    magic, version, kind, model_id, height, width, pad_b, pad_r, count = _FIXED.unpack_from(data)
    if version != VERSION:
        raise PfcError(f"{name}: .pfc version {version}; this pixelforge reads version {VERSION}")
    if kind >= len(MODEL_KINDS) or count < 1 or count > 2 or not (height and width):
        raise PfcError(f"{name}: corrupted .pfc header")
    tail = struct.Struct(f"<{count}III")
    body_start = _FIXED.size + tail.size
    if len(data) < body_start:
        raise PfcError(f"{name}: truncated .pfc file ({len(data)} bytes, shorter than its header)")
    *lengths, symbols_crc, checksum = tail.unpack_from(data, _FIXED.size)
    expected = body_start + sum(lengths)
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes;"
        raise PfcError(f"{name}: {what} .pfc file ({len(data)} bytes, its header says {expected})")
    head = data[:body_start - 4]
    if zlib.crc32(data[body_start:], zlib.crc32(head)) != checksum:
        raise PfcError(f"{name}: corrupted .pfc file (checksum mismatch)")
    strings, at = [], body_start
    for length in lengths:
        strings.append(bytes(data[at:at + length]))
        at += length
    return PfcFile(MODEL_KINDS[kind], model_id, height, width, pad_b, pad_r, tuple(strings), symbols_crc)
