"""Recording devices as their requests arrive. A dialect's push or pull view calls `seen(...)` once it
knows who the client is; after the answer is made, one upsert (models.devices.touch) records the
request, with the answer's error code when it failed. The dialect names its client and reads its app
version from its own headers; this module knows no dialect."""
from __future__ import annotations

import logging

from flask import Flask, g, request

from models.devices import touch
from web import db

log = logging.getLogger(__name__)


def header(*names: str) -> str | None:
    """The first of these request headers that is present (an app version a client sends)."""
    for name in names:
        value = request.headers.get(name)
        if value:
            return value
    return None


def seen(*, dialect: str, tenant_id: str, client_id, activity: str, records: int = 0,
         app_version: str | None = None, pulled_version: int | None = None) -> None:
    """Note this request's device; recorded when the request ends (one upsert, whatever the answer)."""
    if not isinstance(client_id, str) or not client_id:
        return
    g.fieldsync_device = {"dialect": dialect, "tenant_id": tenant_id, "client_id": client_id,
                          "activity": activity, "records": records, "app_version": app_version,
                          "pulled_version": pulled_version}


def error_seen(code: str) -> None:
    """The error code of the request's answer (set by web.errors.render)."""
    g.fieldsync_error_code = code


def record(session, device: dict, error: str | None = None) -> None:
    """One device upsert in a transaction of its own. Its commit does not wait for the WAL flush: device
    activity is a hint for ops, and a crash that loses the last instant of it loses nothing else."""
    if session.in_transaction():
        session.rollback()  # whatever the view left uncommitted stays discarded
    touch(session, error=error, lazy_commit=True, **device)
    session.commit()


def install(app: Flask) -> None:
    @app.after_request
    def _record(response):
        device = g.pop("fieldsync_device", None)
        if device is None:
            return response
        error = None
        if response.status_code >= 400:
            error = f"{response.status_code} {g.get('fieldsync_error_code') or 'error'}"
            device["records"] = 0
        session = db.session()
        try:
            record(session, device, error)
        except Exception:  # recording a device never costs the client its answer
            log.warning("device activity not recorded", exc_info=True)
            try:
                session.rollback()
            except Exception:
                pass
        return response
