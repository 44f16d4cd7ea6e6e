import hashlib
import io

import pytest

from models.blobs import BlobStore, BlobTooLarge


def test_put_is_content_addressed_and_atomic(tmp_path):
    store = BlobStore(tmp_path)
    data = b"hello field" * 1000
    sha, size = store.put_stream(io.BytesIO(data))
    assert sha == hashlib.sha256(data).hexdigest() and size == len(data)
    assert store.open(sha).read() == data
    assert store.put_bytes(data) == (sha, size)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_size_cap_leaves_nothing_behind(tmp_path):
    store = BlobStore(tmp_path)
    with pytest.raises(BlobTooLarge):
        store.put_chunks([b"x" * 600, b"y" * 600], max_bytes=1000)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_path_rejects_non_digests(tmp_path):
    store = BlobStore(tmp_path)
    for bad in ("../../etc/passwd", "a" * 63, "Z" * 64):
        with pytest.raises(ValueError):
            store.path(bad)
    assert not store.exists("../x")
