"""Why a video file gives OpenCV no frame, from what the boxes of an MP4 or MOV file (ISO/IEC 14496-12) hold.

OpenCV's FFmpeg reader answers only "not opened" or "no frame". The file's structure tells the cases a user meets
apart: an MP4 without a 'moov' box is cut short (a recording stopped before it was closed, a partial copy); one whose
'moov' has no video track with samples holds no frames (a writer closed before its first frame, sound only); one whose
video track has samples is in a codec OpenCV cannot decode, which its sample entry names ('hvc1', 'av01'). Only box
headers and the 'moov' box are read, never the media data.

Example:
    >>> no_frame_reason(Path("closed-before-its-first-frame.mp4"))  # doctest: +SKIP
    'the file has no video frames (an MP4 with no video track)'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAX_MOOV_BYTES = 64 << 20  # an index larger than this is not read (hours of video have a few MB)


@dataclass
class Track:
    handler: str  # 'vide', 'soun', ...
    samples: int  # frames, for a video track
    codec: str  # the first sample entry's type: 'mp4v', 'avc1', 'hvc1'...


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """(type, body start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        body = start + 8
        if size == 1 and body + 8 <= end:  # a 64-bit size follows the type
            size, body = struct.unpack(">Q", data[body:body + 8])[0], body + 8
        elif size == 0:  # the box runs to the end
            size = end - start
        if size < body - start:
            return
        yield kind, body, min(start + size, end)
        start += size


def _find(data: bytes, path: list[bytes], start: int, end: int) -> int | None:
    """The body start of the first box at `path` (types, outermost first) inside data[start:end]."""
    for kind, body, box_end in _boxes(data, start, end):
        if kind == path[0]:
            return body if len(path) == 1 else _find(data, path[1:], body, box_end)
    return None


def _u32(data: bytes, at: int | None) -> int:
    return struct.unpack(">I", data[at:at + 4])[0] if at is not None and at + 4 <= len(data) else 0


def _track(moov: bytes, body: int, end: int) -> Track:
    handler = _find(moov, [b"mdia", b"hdlr"], body, end)
    stbl = [b"mdia", b"minf", b"stbl"]
    sizes = _find(moov, stbl + [b"stsz"], body, end)
    if sizes is None:
        sizes = _find(moov, stbl + [b"stz2"], body, end)
    entries = _find(moov, stbl + [b"stsd"], body, end)
    return Track(moov[handler + 8:handler + 12].decode("latin-1") if handler is not None else "",
                 _u32(moov, sizes + 8 if sizes is not None else None),
                 moov[entries + 12:entries + 16].decode("latin-1") if entries is not None else "")


def mp4_tracks(path: Path) -> tuple[bool, bool, list[Track]] | None:
    """(has a 'moov' box, has 'moof' fragments, the tracks of 'moov'), or None for a file that is not an MP4/MOV."""
    length = path.stat().st_size
    with open(path, "rb") as file:
        if file.read(8)[4:] != b"ftyp":
            return None
        file.seek(0)
        moov, fragmented, at = None, False, 0
        while header := file.read(16):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header[:8])
            head = 8
            if size == 1 and len(header) == 16:
                size, head = struct.unpack(">Q", header[8:16])[0], 16
            elif size == 0:
                size = length - at
            if size < head or at + size > length:  # a box the file ends inside: cut short
                break
            fragmented |= kind == b"moof"
            if kind == b"moov" and size <= MAX_MOOV_BYTES:
                file.seek(at + head)
                moov = file.read(size - head)
            at += size
            file.seek(at)
    if moov is None:
        return False, fragmented, []
    return True, fragmented, [_track(moov, body, end) for kind, body, end in _boxes(moov) if kind == b"trak"]


def no_frame_reason(path: Path) -> str | None:
    """Why OpenCV gets no frame from `path`: an empty file of any kind, or what its MP4 boxes tell; None for other
    files or an unknown reason."""
    try:
        if path.stat().st_size == 0:  # a failed download or copy: "convert it to H.264" would send the user astray
            return "the file is empty (0 bytes)"
        found = mp4_tracks(path)
    except OSError:
        return None
    if found is None:
        return None
    complete, fragmented, tracks = found
    if not complete and not fragmented:
        return ("the MP4 is cut short: its 'moov' index is missing or incomplete (a recording stopped before it "
                "was closed, or a copy not finished), so no frame can be read from it")
    video = [t for t in tracks if t.handler == "vide"]
    if complete and not fragmented and not any(t.samples for t in video):
        what = ("an empty video track" if video else "sound only" if any(t.handler == "soun" for t in tracks)
                else "no video track")
        return f"the file has no video frames (an MP4 with {what})"
    codec = next((t.codec for t in video if t.samples and t.codec), "")
    return f"OpenCV cannot decode its video (codec {codec!r}); re-encode it, e.g. to H.264 in .mp4" if codec else None
