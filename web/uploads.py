"""The dialect-neutral part of a resumable upload: where a chunk starts (Upload-Offset, or Content-Range),
appending a request stream to a part file at the confirmed offset, and reading the part back.

Bytes are appended to the part file and fsynced before the caller commits the new offset, so a confirmed
offset never claims bytes a crash could lose; bytes past the confirmed offset (from a chunk that never
committed) are dropped before the next one is written. A link that drops in the middle of a chunk keeps
what arrived; the client asks for the offset and carries on from there. A dialect keeps the upload's row
(its tenant, the confirmed offset, the declared size) and maps the errors below to its own envelope."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

from werkzeug.exceptions import ClientDisconnected

COPY_SIZE = 1 << 20
# Byte counts are ASCII digits, at most 18 of them (below 2^63, what the offsets' bigint columns hold).
RANGE = re.compile(r"bytes\s+([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18}|\*)")
NUMBER = re.compile(r"[0-9]{1,18}")


class OffsetError(Exception):
    """The chunk's position cannot be read. `reason`: bad_offset, bad_range, no_offset, total_mismatch,
    too_large (the total in Content-Range is over the cap)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class PartTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the upload would exceed {limit} bytes")
        self.limit = limit


def client_offset(headers: Mapping[str, str], *, max_bytes: int, declared_size: int | None) -> tuple[int, int | None]:
    """(offset, total) of the chunk a request carries: Upload-Offset, else `Content-Range: bytes a-b/total`
    (total None when `*` or not given). Raises OffsetError."""
    header = headers.get("Upload-Offset")
    if header is not None:
        if not NUMBER.fullmatch(header.strip()):
            raise OffsetError("bad_offset", "Upload-Offset must be a whole number of bytes")
        return int(header), None
    content_range = headers.get("Content-Range")
    if content_range:
        match = RANGE.fullmatch(content_range.strip())
        if not match:
            raise OffsetError("bad_range", "Content-Range must look like 'bytes 0-1048575/5242880'")
        total = None if match.group(3) == "*" else int(match.group(3))
        if total is not None:
            if total > max_bytes:
                raise OffsetError("too_large", f"the file is larger than {max_bytes} bytes")
            if declared_size is not None and declared_size != total:
                raise OffsetError("total_mismatch", "the total in Content-Range differs from the upload's size")
        return int(match.group(1)), total
    raise OffsetError("no_offset", "send Upload-Offset (or Content-Range) with the chunk")


def append_part(path: Path, received: int, stream: BinaryIO, limit: int) -> int:
    """Append `stream` to the part file at `received` (dropping anything past it), fsynced; the number of
    bytes written. Past `limit` in all: PartTooLarge, and the part is cut back to `received`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "r+b" if path.exists() else "w+b") as out:
        out.truncate(received)
        out.seek(received)
        try:
            while True:
                chunk = stream.read(COPY_SIZE)
                if not chunk:
                    break
                if received + written + len(chunk) > limit:
                    raise PartTooLarge(limit)
                out.write(chunk)
                written += len(chunk)
        except ClientDisconnected:
            pass  # keep what arrived; the client resumes from the offset it reads back
        except BaseException:
            out.truncate(received)
            raise
        out.flush()
        os.fsync(out.fileno())
    return written


def part_chunks(path: Path, length: int) -> Iterator[bytes]:
    """The first `length` bytes of the part file, in chunks (to hash into the blob store)."""
    left = length
    with open(path, "rb") as f:
        while left > 0:
            chunk = f.read(min(COPY_SIZE, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


# --- one file of a multipart/form-data body, streamed --------------------------------------------------

class MultipartError(Exception):
    """The body is not multipart/form-data with a boundary, is malformed, or ends early."""


class FilePart:
    """The file part named `field` of a multipart/form-data body, read as the body streams in (no spool
    to a temporary file): `find()` skips to it, `chunks()` yields its bytes. Raises MultipartError."""

    def __init__(self, stream: BinaryIO, content_type: str | None, field: str, *, read_size: int = 1 << 20,
                 max_parts: int = 64, max_field_bytes: int = 1 << 20):
        from werkzeug.http import parse_options_header
        from werkzeug.sansio.multipart import MultipartDecoder
        mimetype, options = parse_options_header(content_type or "")
        boundary = options.get("boundary")
        if mimetype != "multipart/form-data" or not boundary:
            raise MultipartError("the body must be multipart/form-data with a boundary")
        try:
            # The decoder's limit is on its buffer: one read plus what a field part may hold.
            self._decoder = MultipartDecoder(boundary.encode("ascii"), max_form_memory_size=read_size + max_field_bytes,
                                             max_parts=max_parts)
        except (UnicodeEncodeError, ValueError):
            raise MultipartError("the multipart boundary is not valid") from None
        self._stream, self._field, self._read_size, self._eof = stream, field, read_size, False
        self.filename: str | None = None
        self.mimetype: str | None = None

    def _next(self):
        from werkzeug.sansio.multipart import NeedData
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError:
                raise MultipartError("the multipart body is malformed") from None
            if not isinstance(event, NeedData):
                return event
            if self._eof:
                raise MultipartError("the multipart body ends before its closing boundary")
            chunk = self._stream.read(self._read_size)
            if not chunk:
                self._eof = True
            self._decoder.receive_data(chunk or None)

    def find(self) -> bool:
        """Advance to the file part; False when the body has none."""
        from werkzeug.http import parse_options_header
        from werkzeug.sansio.multipart import Epilogue, File
        while True:
            event = self._next()
            if isinstance(event, Epilogue):
                return False
            if isinstance(event, File) and event.name == self._field:
                self.filename = event.filename
                self.mimetype = parse_options_header(event.headers.get("Content-Type", ""))[0] or None
                return True

    def chunks(self) -> Iterator[bytes]:
        from werkzeug.sansio.multipart import Data
        while True:
            event = self._next()
            if not isinstance(event, Data):
                raise MultipartError("the multipart body is malformed")
            if event.data:
                yield event.data
            if not event.more_data:
                return
