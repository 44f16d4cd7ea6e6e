"""Test harness: a fresh PostgreSQL database per run (TEST_DATABASE_URL's server, or an embedded one),
a Redis (TEST_REDIS_URL, or an embedded one), savepoint-isolated sessions, and a real Celery worker
process for end-to-end tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
import redis as redis_lib
from sqlalchemy.orm import Session, sessionmaker

from config.settings import ALL_QUEUES, Settings
from models.db import make_engine, make_session_factory
from models.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fieldsync")


@pytest.fixture(scope="session")
def pg_server_url(tmp_root):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        try:
            psycopg2.connect(url, connect_timeout=5).close()
        except psycopg2.OperationalError as exc:
            pytest.exit(f"TEST_DATABASE_URL is unreachable: {exc}", returncode=3)
        yield url
        return
    from web.embedded import EmbeddedPostgres
    pg = EmbeddedPostgres(tmp_root / "embedded")
    yield pg.start()
    pg.stop()


@pytest.fixture(scope="session")
def database_url(pg_server_url):
    """A fresh database for this run, dropped at the end."""
    name = f"fieldsync_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(pg_server_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    yield url
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture(scope="session")
def redis_url(tmp_root):
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        try:
            redis_lib.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis_lib.RedisError as exc:
            pytest.exit(f"TEST_REDIS_URL is unreachable: {exc}", returncode=3)
        yield url
        return
    from web.embedded import EmbeddedRedis
    server = EmbeddedRedis(tmp_root / "embedded")
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def settings(database_url, redis_url, tmp_root) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, data_dir=tmp_root / "data",
                    jwt_secret="test-secret-" + uuid.uuid4().hex, bcrypt_rounds=4, sync_wait_seconds=20,
                    job_lease_seconds=30, requeue_after_seconds=1, sweep_interval_seconds=1, log_json=False)


@pytest.fixture(scope="session")
def engine(settings):
    eng = make_engine(settings.database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine):
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def db_session(connection) -> Session:
    """A session whose commits are savepoints inside a transaction rolled back after the test."""
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture
def isolated_sessions(connection):
    """A session factory for an app under test, bound to the rolled-back test transaction."""
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture(scope="session")
def real_sessions(engine):
    """Sessions that really commit (for tests that share data with a worker process)."""
    return make_session_factory(engine)


class RecordingBroker:
    """Stands in for the broker in view-level tests: records what would be sent, runs nothing."""

    def __init__(self):
        self.sent: list[tuple[str, list, str]] = []

    def send_task(self, name, args=None, queue=None, **kw):
        self.sent.append((name, list(args or []), queue))


@pytest.fixture
def broker():
    return RecordingBroker()


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app(settings, isolated_sessions, broker, redis_client):
    from web.app import create_app
    application = create_app(settings, session_factory=isolated_sessions, celery_app=broker,
                             redis_client=redis_client)
    application.testing = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def worker_env(settings: Settings) -> dict:
    env = dict(os.environ)
    env.update(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
               FIELDSYNC_DATA_DIR=str(settings.data_dir), JWT_SECRET=settings.jwt_secret,
               BCRYPT_ROUNDS="4", JOB_LEASE_SECONDS=str(settings.job_lease_seconds),
               REQUEUE_AFTER_SECONDS=str(settings.requeue_after_seconds), LOG_JSON="false",
               PYTHONPATH=str(ROOT))
    return env


class WorkerProcess:
    """A real `celery worker` process against the test database and broker."""

    def __init__(self, settings: Settings, queues=ALL_QUEUES, concurrency: int = 2, extra_env: dict | None = None):
        self.settings = settings
        self.queues = queues
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen | None = None
        self.hostname_prefix = f"test-{uuid.uuid4().hex[:6]}@"
        self.log_path = Path(settings.data_dir) / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self) -> "WorkerProcess":
        Path(self.settings.data_dir).mkdir(parents=True, exist_ok=True)
        env = worker_env(self.settings)
        env.update(self.extra_env)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues", ",".join(self.queues),
             "--concurrency", str(self.concurrency), "--pool", "prefork", "--loglevel", "INFO",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--hostname", f"{self.hostname_prefix}%h"],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("worker exited at start:\n" + self.log_path.read_text()[-4000:])
            if b"ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        raise RuntimeError("worker did not become ready:\n" + self.log_path.read_text()[-4000:])

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()
        self.proc = None

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture(scope="session")
def celery_app(settings, real_sessions):
    from workers.app import make_celery
    from workers.runtime import Runtime
    return make_celery(settings, Runtime(settings, real_sessions))


@pytest.fixture(scope="module")
def live_worker(settings, engine, redis_url):
    redis_lib.Redis.from_url(redis_url).flushdb()
    worker = WorkerProcess(settings).start()
    yield worker
    worker.stop()


@pytest.fixture
def live_app(settings, real_sessions, celery_app, redis_client):
    """The app on committed sessions and the real broker (pair it with live_worker)."""
    from web.app import create_app
    autocommit = make_engine(settings.database_url, pool_size=1, autocommit=True)
    application = create_app(settings, session_factory=real_sessions, celery_app=celery_app,
                             redis_client=redis_client, autocommit_factory=make_session_factory(autocommit))
    application.testing = True
    yield application
    autocommit.dispose()


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")
