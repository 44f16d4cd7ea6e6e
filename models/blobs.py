"""Content-addressed blob store: files named by their sha256 under the data directory, written to a
temp file while hashing (with a size cap) and renamed into place, so a reader never sees half a file."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable

_HEX = set("0123456789abcdef")


class BlobTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"payload exceeds {limit} bytes")
        self.limit = limit


class BlobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except ValueError:
            return False

    def put_chunks(self, chunks: Iterable[bytes], *, max_bytes: int | None = None) -> tuple[str, int]:
        """Store the bytes; returns (sha256, size). Raises BlobTooLarge (leaving nothing behind)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)  # same content, same name: a re-upload is a harmless overwrite
            return sha, size
        except BaseException:
            try:
                os.unlink(tmp_name)
            except FileNotFoundError:
                pass
            raise

    def put_stream(self, stream: BinaryIO, *, max_bytes: int | None = None, chunk_size: int = 1 << 16) -> tuple[str, int]:
        return self.put_chunks(iter(lambda: stream.read(chunk_size), b""), max_bytes=max_bytes)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_chunks([data])

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path(sha256), "rb")


def register_blob(session, sha256: str, size: int, media_type: str | None = None) -> None:
    """Record a stored blob in the `blobs` table (once per content; the caller's transaction)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    from models.tables import Blob
    session.execute(pg_insert(Blob).values(sha256=sha256, size=size, media_type=media_type)
                    .on_conflict_do_nothing())


def save_bytes(session, store: BlobStore, data: bytes, media_type: str | None = None) -> tuple[str, int]:
    """Write `data` to the blob store and register it in the caller's transaction: (sha256, size)."""
    sha, size = store.put_bytes(data)
    register_blob(session, sha, size, media_type)
    return sha, size
