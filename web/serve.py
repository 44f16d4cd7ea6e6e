"""`fieldsync serve`: embedded engines when no URLs are given, migrations, the first admin, then the web
server, a worker for every queue and the scheduler as child processes, stopped together on Ctrl-C or
SIGTERM within 15 seconds. While it runs it supervises all of them: whatever dies (an embedded engine
included) is started again, with a growing delay when it keeps dying."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.settings import ALL_QUEUES, Settings, require_secret

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8
# Restart back-off: the first restart is immediate, then 1, 2, 4… seconds up to the cap; a unit that ran
# this long since its last start counts as healthy again.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0


class Supervised:
    """Something `serve` keeps running: restarted when found dead, at once the first time, then after a
    delay that doubles (up to BACKOFF_MAX_SECONDS) while it keeps dying; every event is logged."""

    name = "?"

    def __init__(self):
        self.failures = 0
        self.started_at = 0.0
        self.down_since: float | None = None
        self.next_try = 0.0

    def alive(self) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def restart(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def describe_exit(self) -> str:
        return "exited"

    def supervise(self, now: float, echo) -> None:
        if self.alive():
            if self.failures and now - self.started_at > HEALTHY_AFTER_SECONDS:
                self.failures = 0
            return
        if self.down_since is None:
            self.down_since = now
            delay = _backoff(self.failures)
            self.next_try = now + delay
            echo(f"{self.name} {self.describe_exit()}; restarting it" + (f" in {delay:.0f} s" if delay else ""))
        if now < self.next_try:
            return
        self.failures += 1
        try:
            self.restart()
        except Exception as exc:  # a failed start is tried again after the delay
            delay = _backoff(self.failures)
            self.next_try = time.monotonic() + delay
            echo(f"{self.name} did not start ({exc}); trying again in {delay:.0f} s")
            return
        self.started_at = time.monotonic()
        self.down_since = None
        echo(f"{self.name} restarted")


def _backoff(failures: int) -> float:
    """No wait before the first restart; then 1, 2, 4… seconds up to the cap."""
    if failures == 0:
        return 0.0
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** (failures - 1))


class Child(Supervised):
    def __init__(self, name: str, argv: list[str], env: dict):
        super().__init__()
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # Each child leads its own process group so the whole tree (gunicorn and celery children) stops.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started_at = time.monotonic()

    def restart(self) -> None:
        if self.proc is not None:
            self.kill_group()  # what is left of the old group (forked pool children)
        self.start()

    def describe_exit(self) -> str:
        code = None if self.proc is None else self.proc.returncode
        return f"exited (code {code})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(3)
        except subprocess.TimeoutExpired:
            pass


class Engine(Supervised):
    """An embedded PostgreSQL or Redis (web.embedded), restarted on the same data and address."""

    def __init__(self, name: str, server, on_url_change):
        super().__init__()
        self.name, self.server, self.on_url_change = name, server, on_url_change
        self.url: str | None = None

    def start(self) -> str:
        self.url = self.server.start()
        self.started_at = time.monotonic()
        return self.url

    def alive(self) -> bool:
        return self.server.alive()

    def describe_exit(self) -> str:
        return "is not running"

    def restart(self) -> None:
        url = self.server.restart()
        if url != self.url:
            self.url = url
            self.on_url_change()


def child_commands(settings: Settings, host: str, port: int, env: dict) -> list[Child]:
    py = sys.executable
    return [
        Child("web", [py, "-m", "gunicorn", "web.wsgi:app", "--bind", f"{host}:{port}", "--workers", "2",
                      "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
                      "--graceful-timeout", "5"], env),
        Child("worker", [py, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues",
                         ",".join(ALL_QUEUES), "--concurrency", str(settings.worker_concurrency), "--loglevel", "INFO",
                         "--hostname", "fieldsync@%h", "--without-gossip", "--without-mingle"], env),
        Child("scheduler", [py, "-m", "web.cli", "scheduler"], env),
    ]


def signing_secret(settings: Settings, data_dir: Path, embedded: bool) -> str:
    """JWT_SECRET when set; in embedded mode without it, the data directory's own generated secret. With
    real servers it must be set (MissingSecret otherwise)."""
    if embedded and (not settings.jwt_secret or settings.jwt_secret == Settings.jwt_secret):
        from web.embedded import load_or_create_secret
        return load_or_create_secret(data_dir)
    return require_secret(settings).jwt_secret


def serve(settings: Settings, host: str, port: int, data_dir: Path, echo=print) -> int:
    from models.db import make_engine, make_session_factory, session_scope
    from models.migrate import upgrade
    from models.users import bootstrap_admin
    from web.embedded import EmbeddedPostgres, EmbeddedRedis, remove_runtime_file, write_runtime_file

    data_dir = data_dir.resolve()
    embedded = settings.database_url is None
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = signing_secret(settings, data_dir, embedded)  # refuses before anything starts
    settings = settings.replace(jwt_secret=secret)
    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    engines: list[Engine] = []
    children: list[Child] = []
    env = dict(os.environ)

    def urls_changed():
        # an engine came back on another address: the children must be started on the new one
        env.update(DATABASE_URL=engines_url("postgresql", settings.database_url),
                   REDIS_URL=engines_url("redis", settings.redis_url))
        write_runtime_file(data_dir, {"database_url": env["DATABASE_URL"], "redis_url": env["REDIS_URL"],
                                      "pid": os.getpid(), "url": env.get("PUBLIC_BASE_URL")})
        for child in children:
            child.env = env
            child.signal(signal.SIGTERM)

    def engines_url(name, default):
        return next((e.url for e in engines if e.name == name), default)

    try:
        database_url = settings.database_url
        if database_url is None:
            echo(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
            engines.append(Engine("postgresql", EmbeddedPostgres(data_dir), urls_changed))
            database_url = engines[-1].start()
        redis_url = settings.redis_url
        if redis_url is None:
            echo(f"starting embedded Redis in {data_dir / 'redis'}")
            engines.append(Engine("redis", EmbeddedRedis(data_dir), urls_changed))
            redis_url = engines[-1].start()
        settings = settings.replace(database_url=database_url, redis_url=redis_url, data_dir=data_dir)

        engine = make_engine(database_url, pool_size=1, connect_timeout=settings.db_connect_timeout_seconds)
        upgrade(engine)
        admin_user = settings.admin_username or "admin"
        with session_scope(make_session_factory(engine)) as session:
            created = bootstrap_admin(session, admin_user, settings.admin_password, settings.bcrypt_rounds,
                                      only_if_no_users=True)
        engine.dispose()
        if created and settings.admin_password:
            echo(f"created the first admin user {admin_user!r} with the password of ADMIN_PASSWORD")
        elif created:
            echo(f"created the first admin user {admin_user!r}; its password (shown only now): {created}\n"
                 f"change it with `fieldsync user set-password {admin_user}`")

        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, FIELDSYNC_DATA_DIR=str(data_dir),
                   JWT_SECRET=secret)
        if not settings.public_base_url:
            env["PUBLIC_BASE_URL"] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        write_runtime_file(data_dir, {"database_url": database_url, "redis_url": redis_url, "pid": os.getpid(),
                                      "url": env.get("PUBLIC_BASE_URL", settings.public_base_url)})
        # every process writes its metric files here; the files of an earlier run are removed first
        from config.metrics import clear_directory
        deployment = settings.replace(data_dir=data_dir)
        clear_directory(deployment)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(deployment.metrics_path)
        children.extend(child_commands(settings, host, port, env))
        for child in children:
            child.start()
        echo(f"fieldsync is running at {env.get('PUBLIC_BASE_URL', settings.public_base_url)} "
             f"(Ctrl-C to stop)")
        while not stopping["flag"]:
            time.sleep(0.2)
            # engines first: a child restarted while its database is down would only die again
            for unit in [*engines, *children]:
                if stopping["flag"]:
                    break
                unit.supervise(time.monotonic(), echo)
        return 0
    finally:
        echo("stopping fieldsync…")
        for child in children:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children:
            while child.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        for child in children:
            child.kill_group()  # whatever is left of each group, including forked pool children
        for unit in reversed(engines):
            unit.server.stop()
        remove_runtime_file(data_dir)
        echo("stopped")
