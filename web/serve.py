"""`fieldsync serve`: embedded engines when no URLs are given, migrations, the first admin, then the web
server, a worker for every queue and the scheduler as child processes, stopped together on Ctrl-C or
SIGTERM within 15 seconds."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.settings import ALL_QUEUES, Settings

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8


class Child:
    def __init__(self, name: str, argv: list[str], env: dict):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.restarts: list[float] = []

    def start(self) -> None:
        # Each child leads its own process group so the whole tree (gunicorn and celery children) stops.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)

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


def child_commands(settings: Settings, host: str, port: int, env: dict) -> list[Child]:
    py = sys.executable
    return [
        Child("web", [py, "-m", "gunicorn", "web.wsgi:app", "--bind", f"{host}:{port}", "--workers", "2",
                      "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
                      "--graceful-timeout", "5"], env),
        Child("worker", [py, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues",
                         ",".join(ALL_QUEUES), "--concurrency", "2", "--loglevel", "INFO",
                         "--hostname", "fieldsync@%h", "--without-gossip", "--without-mingle"], env),
        Child("scheduler", [py, "-m", "web.cli", "scheduler"], env),
    ]


def serve(settings: Settings, host: str, port: int, data_dir: Path, echo=print) -> int:
    from models.db import make_engine, make_session_factory, session_scope
    from models.migrate import upgrade
    from models.users import bootstrap_admin
    from web.embedded import EmbeddedPostgres, EmbeddedRedis, remove_runtime_file, write_runtime_file

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stopping = {"flag": False}

    def on_signal(signum, frame):
        stopping["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    pg = redis_server = None
    children: list[Child] = []
    embedded = settings.database_url is None
    try:
        database_url = settings.database_url
        if database_url is None:
            echo(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
            pg = EmbeddedPostgres(data_dir)
            database_url = pg.start()
        redis_url = settings.redis_url
        if redis_url is None:
            echo(f"starting embedded Redis in {data_dir / 'redis'}")
            redis_server = EmbeddedRedis(data_dir)
            redis_url = redis_server.start()
        settings = settings.replace(database_url=database_url, redis_url=redis_url, data_dir=data_dir)

        engine = make_engine(database_url, pool_size=1)
        upgrade(engine)
        admin_user, admin_password = settings.admin_username, settings.admin_password
        if embedded and not (admin_user and admin_password):
            admin_user, admin_password = admin_user or "admin", admin_password or "admin"
            echo("WARNING: the first admin is admin/admin; set ADMIN_USERNAME and ADMIN_PASSWORD, "
                 "or change it with `fieldsync user set-password admin`")
        if admin_user and admin_password:
            with session_scope(make_session_factory(engine)) as session:
                if bootstrap_admin(session, admin_user, admin_password, settings.bcrypt_rounds):
                    echo(f"created the first admin user {admin_user!r}")
        engine.dispose()

        env = dict(os.environ)
        env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, FIELDSYNC_DATA_DIR=str(data_dir))
        if not settings.public_base_url:
            env["PUBLIC_BASE_URL"] = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        write_runtime_file(data_dir, {"database_url": database_url, "redis_url": redis_url, "pid": os.getpid(),
                                      "url": env.get("PUBLIC_BASE_URL", settings.public_base_url)})
        children = child_commands(settings, host, port, env)
        for child in children:
            child.start()
        echo(f"fieldsync is running at {env.get('PUBLIC_BASE_URL', settings.public_base_url)} "
             f"(Ctrl-C to stop)")
        while not stopping["flag"]:
            time.sleep(0.2)
            for child in children:
                if not child.alive() and not stopping["flag"]:
                    now = time.monotonic()
                    child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                    if len(child.restarts) > 5:
                        echo(f"{child.name} keeps exiting; stopping fieldsync")
                        stopping["flag"] = True
                        break
                    echo(f"{child.name} exited (code {child.proc.returncode}); restarting it")
                    child.start()
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
        if redis_server is not None:
            redis_server.stop()
        if pg is not None:
            pg.stop()
        remove_runtime_file(data_dir)
        echo("stopped")
