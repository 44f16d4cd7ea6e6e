"""GET /health and GET /version, public, in the Synkronus 1.0.3 shapes."""
from __future__ import annotations

import datetime as dt
import os
import platform

import redis
from flask import Blueprint, current_app, jsonify
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text

from models.db import probe_database
from web import db

bp = Blueprint("ops_health", __name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# Each check gives up after this long, so /health answers (503 at worst) within about 5 seconds even when
# a server is frozen or a network drops packets.
CHECK_TIMEOUT_SECONDS = 2.0


def _database_engine():
    bind = current_app.extensions["fieldsync_sessions"].kw.get("bind")
    return getattr(bind, "engine", bind)


_REDIS_ADDRESS_KEYS = {"host", "port", "db", "username", "password", "path", "ssl_cert_reqs", "ssl_ca_certs",
                       "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"}


def _health_redis() -> redis.Redis:
    """A client on the app's Redis with short socket timeouts, kept for the app's life."""
    client = current_app.extensions.get("fieldsync_health_redis")
    if client is None:
        pool = current_app.extensions["fieldsync_redis"]().connection_pool
        kwargs = {key: value for key, value in pool.connection_kwargs.items() if key in _REDIS_ADDRESS_KEYS}
        client = redis.Redis(connection_pool=redis.ConnectionPool(
            connection_class=pool.connection_class, max_connections=4, socket_timeout=CHECK_TIMEOUT_SECONDS,
            socket_connect_timeout=CHECK_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0), **kwargs))
        current_app.extensions["fieldsync_health_redis"] = client
    return client


@bp.get("/health")
def health():
    settings = current_app.config["FIELDSYNC_SETTINGS"]
    failing = []
    try:
        probe_database(_database_engine(), timeout=CHECK_TIMEOUT_SECONDS)
    except Exception:
        failing.append("postgresql")
    try:
        _health_redis().ping()
    except Exception:
        failing.append("redis")
    if failing:
        body = {"status": "error", "error": f"{' and '.join(failing)} unreachable", "failing": failing,
                "timestamp": _now()}
        return jsonify(body), 503
    return jsonify({"status": "ok", "timestamp": _now(), "version": settings.server_version})


@bp.get("/version")
def version():
    settings = current_app.config["FIELDSYNC_SETTINGS"]
    session = db.session()
    row = session.execute(text("SELECT version(), current_database()")).one()
    body = {
        "server": {"version": settings.server_version},
        "database": {"type": "postgresql", "version": row[0], "database_name": row[1]},
        "system": {"os": platform.system().lower(), "architecture": platform.machine(),
                   "cpus": os.cpu_count() or 1},
        "build": {"commit": os.environ.get("SOURCE_COMMIT", "unknown"), "build_time": "unknown",
                  "go_version": f"python{platform.python_version()}"},
    }
    response = current_app.response_class(current_app.json.dumps(body, indent=2) + "\n",
                                          mimetype="application/json")
    return response
