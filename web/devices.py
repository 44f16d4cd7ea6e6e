"""Recording devices as their requests arrive. A dialect's push or pull view calls `seen(...)` once it
knows who the client is; after the answer is made, one upsert (models.devices.touch) records the
request, with the answer's error code when it failed. The dialect names its client and reads its app
version from its own headers; this module knows no dialect.

In a server (`write_behind`), the upsert is handed to a writer thread of the process, which gathers
the requests of up to LINGER seconds and records them in one transaction, one upsert per device (its
pushes and pulls counted, the latest version and error kept), so no client waits for it and a device
pulling page after page costs one write, not one per page; device activity is a hint for ops, at most
a fraction of a second behind. Tests' apps record inline, before the answer."""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time

from flask import Flask, current_app, g, request

from models.devices import per_device, touch, touch_requests
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


class Recorder:
    """The writer thread of one process: takes (device, error) pairs, gathers those of up to LINGER
    seconds (at most BATCH) and records them in one transaction, one upsert per device. When its queue is
    full (the database is slow or away), the caller records inline instead, so nothing is dropped for
    want of room."""
    BATCH = 1000
    LINGER = 0.25
    QUEUE_SIZE = 10_000

    def __init__(self, session_factory):
        self._factory = session_factory
        self._queue: queue.Queue | None = None  # made with the thread, in the process that uses it
        self._pid = None
        self._lock = threading.Lock()

    def submit(self, device: dict, error: str | None) -> bool:
        """False when the queue is full (record it yourself)."""
        self._start()
        try:
            self._queue.put_nowait((device, error))
            return True
        except queue.Full:
            return False

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything submitted so far is recorded (or timeout)."""
        done = threading.Event()
        if self._pid == os.getpid():
            try:
                self._queue.put((None, done), timeout=timeout)
            except queue.Full:
                return
            done.wait(timeout)

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:  # the first request of this process (a forked worker starts its own)
            if self._pid != os.getpid():
                self._queue = queue.Queue(self.QUEUE_SIZE)
                threading.Thread(target=self._run, name="device-recorder", daemon=True).start()
                self._pid = os.getpid()
                atexit.register(self.flush, 2.0)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            until = time.monotonic() + self.LINGER
            while len(batch) < self.BATCH and batch[-1][0] is not None:  # a flush marker ends the batch
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch) -> None:
        waiters = [done for device, done in batch if device is None]  # flush() markers
        items = [(device, error) for device, error in batch if device is not None]
        session = None
        try:
            if items:
                session = self._factory()
                for device in per_device({**device, "error": error} for device, error in items):
                    touch_requests(session, lazy_commit=True, **device)
                session.commit()
        except Exception:  # recording a device never costs anything else
            log.warning("device activity not recorded (%d requests)", len(items), exc_info=True)
            if session is not None:
                session.rollback()
        finally:
            if session is not None:
                session.close()
        for event in waiters:
            event.set()


def recorder() -> Recorder | None:
    return current_app.extensions.get("fieldsync_device_recorder")


def install(app: Flask, *, write_behind: bool = False) -> None:
    """`write_behind`: record through a writer thread (a server's app); otherwise inline."""
    app.extensions["fieldsync_device_recorder"] = (
        Recorder(app.extensions["fieldsync_sessions"]) if write_behind else None)

    @app.after_request
    def _record(response):
        device = g.pop("fieldsync_device", None)
        if device is None:
            return response
        error = None
        if response.status_code >= 400:
            error = f"{response.status_code} {g.get('fieldsync_error_code') or 'error'}"
            device["records"] = 0
        writer = recorder()
        if writer is not None and writer.submit(device, error):
            return response
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
