"""Synkronus attachment throughput against a running fieldsync, next to `cp` on the same disk.

Writes a file of --mb MB (default 200) of random bytes into --scratch (put it on the disk of the server's
data directory), then measures in one run: `cp` of that file to a second file on the same disk (with an
fsync, as the blob store does), a multipart PUT /attachments/<id> (streamed from the file), a resumable
upload of the same size in --chunk-mb chunks (PATCH /attachments/uploads/<id>, then /finish), and a GET
of the attachment streamed to disk. Prints MB/s of each and its ratio to `cp`.

    python bench/synkronus_attachments_bench.py --url http://127.0.0.1:8000 --admin admin --password … \
        --scratch ./var/bench [--mb 200] [--chunk-mb 8]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import requests

BLOCK = 1 << 20


class MultipartFile:
    """A multipart/form-data body (one field `file`) read from disk, with a length, so it streams with a
    Content-Length instead of being built in memory."""

    def __init__(self, path: Path, boundary: str):
        self.head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n").encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size = path.stat().st_size
        self.file = open(path, "rb")
        self.pending = [self.head]

    def __len__(self) -> int:
        return len(self.head) + self.size + len(self.tail)

    def read(self, n: int = -1) -> bytes:
        if self.pending:
            return self.pending.pop()
        chunk = self.file.read(BLOCK if n is None or n < 0 else max(n, BLOCK))
        if chunk:
            return chunk
        if self.tail:
            tail, self.tail = self.tail, b""
            return tail
        self.file.close()
        return b""


def make_file(path: Path, mb: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(mb):
            block = os.urandom(BLOCK)
            digest.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--admin", default="admin")
    ap.add_argument("--password", required=True)
    ap.add_argument("--scratch", default="./var/bench", help="a directory on the disk of the server's data dir")
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--chunk-mb", type=int, default=8)
    args = ap.parse_args()

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    source, copy, fetched = scratch / "bench-src.bin", scratch / "bench-cp.bin", scratch / "bench-get.bin"
    sha = make_file(source, args.mb)
    size_mb = source.stat().st_size / BLOCK

    def cp():
        subprocess.run(["cp", str(source), str(copy)], check=True)
        fd = os.open(copy, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    cp_seconds = timed(cp)

    http = requests.Session()
    login = http.post(f"{args.url}/auth/login", json={"username": args.admin, "password": args.password}, timeout=30)
    login.raise_for_status()
    http.headers["Authorization"] = f"Bearer {login.json()['token']}"
    run = uuid.uuid4().hex[:8]

    put_id = f"bench-{run}.bin"

    def put():
        boundary = uuid.uuid4().hex
        r = http.put(f"{args.url}/attachments/{put_id}", data=MultipartFile(source, boundary),
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=3600)
        r.raise_for_status()
        assert r.json()["sha256"] == sha, r.text

    put_seconds = timed(put)

    def get():
        with http.get(f"{args.url}/attachments/{put_id}", stream=True, timeout=3600) as r:
            r.raise_for_status()
            with open(fetched, "wb") as out:
                for chunk in r.iter_content(BLOCK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())

    get_seconds = timed(get)

    resumable_id = f"bench-{run}-resumable.bin"

    def resumable():
        r = http.post(f"{args.url}/attachments/uploads", timeout=60,
                      json={"attachment_id": resumable_id, "size": source.stat().st_size})
        r.raise_for_status()
        url = f"{args.url}/attachments/uploads/{r.json()['upload_id']}"
        offset, step = 0, args.chunk_mb * BLOCK
        with open(source, "rb") as f:
            while chunk := f.read(step):
                r = http.patch(url, data=chunk, headers={"Upload-Offset": str(offset)}, timeout=600)
                r.raise_for_status()
                offset = int(r.headers["Upload-Offset"])
        r = http.post(f"{url}/finish", json={"sha256": sha}, timeout=600)
        r.raise_for_status()

    resumable_seconds = timed(resumable)

    ok = hashlib.sha256(fetched.read_bytes()).hexdigest() == sha
    rates = {"cp (same disk, fsync)": size_mb / cp_seconds, "PUT /attachments (multipart)": size_mb / put_seconds,
             f"resumable upload ({args.chunk_mb} MB chunks)": size_mb / resumable_seconds,
             "GET /attachments": size_mb / get_seconds}
    base = rates["cp (same disk, fsync)"]
    print(f"{size_mb:.0f} MB file; download intact: {ok}")
    for name, rate in rates.items():
        print(f"{name:40s} {rate:9.1f} MB/s   {rate / base:6.2f} x cp")
    for path in (source, copy, fetched):
        path.unlink(missing_ok=True)
    if not any(scratch.iterdir()):
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
