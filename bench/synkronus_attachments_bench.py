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

import threading
from urllib.parse import urlsplit

import psutil
import requests
from sqlalchemy import create_engine, text

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


def web_processes(url: str) -> list[psutil.Process]:
    """The process listening on the URL's port and its children (gunicorn's master and workers)."""
    port = urlsplit(url).port or 80
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            owner = psutil.Process(conn.pid)
            # the socket is shared by gunicorn's master and its workers: start from the master
            while owner.parent() is not None and "gunicorn" in " ".join(owner.parent().cmdline()):
                owner = owner.parent()
            return [owner, *owner.children(recursive=True)]
    return []


class RssWatch:
    """Samples the summed RSS of the web processes every 50 ms while a phase runs: (first, peak) in MiB."""

    def __init__(self, processes):
        self.processes, self.samples, self._stop = processes, [], threading.Event()

    def _rss(self) -> float:
        total = 0
        for proc in self.processes:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total / BLOCK

    def __enter__(self):
        self.samples.append(self._rss())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            self.samples.append(self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append(self._rss())

    def summary(self) -> str:
        return f"web RSS {self.samples[0]:.0f} MiB at start, {max(self.samples):.0f} MiB peak"


def manifest_of(args, http, count: int) -> tuple[float, int, int]:
    """Write `count` create operations for the admin's tenant straight into the database, then time one
    POST /attachments/manifest that returns them all: (seconds, bytes, operations answered)."""
    engine = create_engine(args.database_url.replace("postgresql://", "postgresql+psycopg2://", 1))
    tenant = args.tenant
    with engine.begin() as conn:
        base = conn.execute(text("SELECT COALESCE(max(version), 0) FROM synkronus_attachment_operations "
                                 "WHERE tenant_id = :t"), {"t": tenant}).scalar()
        conn.execute(text("""
            INSERT INTO synkronus_attachment_operations (tenant_id, attachment_id, operation, version, sha256,
                                                         size, content_type)
            SELECT :t, 'bench-op-' || g, 'create', :base + g, md5(g::text) || md5(g::text), 1000 + g,
                   'image/jpeg'
              FROM generate_series(1, :n) g"""), {"t": tenant, "base": base, "n": count})
    engine.dispose()
    started = time.perf_counter()
    r = http.post(f"{args.url}/attachments/manifest", json={"client_id": "bench", "since_version": base},
                  timeout=600)
    seconds = time.perf_counter() - started
    r.raise_for_status()
    body = r.json()
    return seconds, len(r.content), len(body.get("operations") or [])


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
    ap.add_argument("--database-url", help="the server's PostgreSQL, to write the operations of the manifest test")
    ap.add_argument("--tenant", default="default", help="the admin's tenant (for the manifest test)")
    ap.add_argument("--operations", type=int, default=100_000)
    args = ap.parse_args()
    web = web_processes(args.url)
    watches: dict[str, RssWatch] = {}

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

    with RssWatch(web) as watches["PUT"]:
        put_seconds = timed(put)

    def get():
        with http.get(f"{args.url}/attachments/{put_id}", stream=True, timeout=3600) as r:
            r.raise_for_status()
            with open(fetched, "wb") as out:
                for chunk in r.iter_content(BLOCK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())

    with RssWatch(web) as watches["GET"]:
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

    with RssWatch(web) as watches["resumable"]:
        resumable_seconds = timed(resumable)

    ok = hashlib.sha256(fetched.read_bytes()).hexdigest() == sha
    rates = {"cp (same disk, fsync)": size_mb / cp_seconds, "PUT /attachments (multipart)": size_mb / put_seconds,
             f"resumable upload ({args.chunk_mb} MB chunks)": size_mb / resumable_seconds,
             "GET /attachments": size_mb / get_seconds}
    base = rates["cp (same disk, fsync)"]
    print(f"{size_mb:.0f} MB file; download intact: {ok}")
    for name, rate in rates.items():
        print(f"{name:40s} {rate:9.1f} MB/s   {rate / base:6.2f} x cp")
    for phase, watch in watches.items():
        print(f"{phase:40s} {watch.summary()}" if web else f"{phase:40s} (web process not found: no RSS)")
    if args.database_url:
        seconds, size, answered = manifest_of(args, http, args.operations)
        print(f"manifest of {args.operations} operations: {seconds:.2f} s, {size / BLOCK:.1f} MiB, "
              f"{answered} operations answered")
    for path in (source, copy, fetched):
        path.unlink(missing_ok=True)
    if not any(scratch.iterdir()):
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
