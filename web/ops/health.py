"""GET /health and GET /version, public, in the Synkronus 1.0.3 shapes."""
from __future__ import annotations

import datetime as dt
import os
import platform

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from web import db

bp = Blueprint("ops_health", __name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.get("/health")
def health():
    settings = current_app.config["FIELDSYNC_SETTINGS"]
    failing = []
    try:
        db.session().execute(text("SELECT 1"))
    except Exception:
        failing.append("postgresql")
    try:
        current_app.extensions["fieldsync_redis"]().ping()
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
