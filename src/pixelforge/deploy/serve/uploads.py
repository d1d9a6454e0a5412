"""Reading multipart uploads into memory, with byte limits enforced while the bytes arrive.

Starlette's form parser spools any file over 1 MB to a temporary file on disk; a prediction server should never
write user images to disk, so the request body is streamed through python-multipart's own parser here and every
part stays a `bytes` object. The limits are checked as data arrives, so an oversized upload is refused after
`max_bytes`, not after it has been read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from python_multipart.multipart import MultipartParser, parse_options_header


class UploadRejected(Exception):
    """A request the server answers with `status_code` and `message` (one line)."""

    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass
class Upload:
    field: str
    filename: str
    data: bytes


class _Collector:
    """python-multipart callbacks that collect each part's headers and bytes."""

    def __init__(self, max_bytes: int, max_files: int):
        self.max_bytes, self.max_files = max_bytes, max_files
        self.parts: list[Upload] = []
        self._header_name = self._header_value = b""
        self._disposition = b""
        self._chunks: list[bytes] = []
        self._size = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_part_data": self.part_data, "on_part_end": self.part_end}

    def part_begin(self) -> None:
        self._disposition, self._chunks, self._size = b"", [], 0
        if len(self.parts) >= self.max_files:
            raise UploadRejected(413, f"too many files in one request (limit {self.max_files}); send fewer per request")

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._size > self.max_bytes:
            raise UploadRejected(413, f"upload over the size limit of {self.max_bytes} bytes; send a smaller image")
        self._chunks.append(data[start:end])

    def part_end(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        self.parts.append(Upload(name, filename, b"".join(self._chunks)))


async def read_uploads(content_type: str, content_length: str | None, body: AsyncIterator[bytes], field: str,
                       max_bytes: int, max_files: int, also: tuple[str, ...] = ()) -> list[Upload]:
    """The `field` parts of a multipart/form-data body, each at most `max_bytes`, at most `max_files` of them
    (and the parts of the optional fields `also`; tell them apart by `Upload.field`).

    Raises:
        UploadRejected: 415 (not multipart), 413 (too large, too many files), 400 (malformed, no `field` part).
    """
    media_type, params = parse_options_header(content_type or "")
    if media_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRejected(415, f"send multipart/form-data with the image in a field named {field!r}")
    limit = max_files * (max_bytes + 16_384)  # room for each part's headers
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise UploadRejected(413, f"request body of {content_length} bytes is over the limit of {limit}; send fewer or smaller images")
    collector = _Collector(max_bytes, max_files)
    parser = MultipartParser(params[b"boundary"], collector.callbacks())
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > limit:
            raise UploadRejected(413, f"request body over the limit of {limit} bytes; send fewer or smaller images")
        try:
            parser.write(chunk)
        except UploadRejected:
            raise
        except Exception as exc:  # noqa: BLE001 - python-multipart raises its own error types
            raise UploadRejected(400, f"malformed multipart body ({exc})") from None
    parser.finalize()
    uploads = [part for part in collector.parts if part.field == field or part.field in also]
    if not any(part.field == field for part in uploads):
        raise UploadRejected(400, f"no field named {field!r} in the form; send the image as {field}=@image.jpg")
    return uploads
