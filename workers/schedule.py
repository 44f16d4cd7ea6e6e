"""Periodic maintenance run by the scheduler process (beside the sweeper)."""
from __future__ import annotations

import logging
import time

from sqlalchemy import text

from models.db import session_scope

log = logging.getLogger(__name__)

_last_run: dict[str, float] = {}
PURGE_EVERY_SECONDS = 3600


def run_due(runtime, celery_app) -> None:
    now = time.monotonic()
    if now - _last_run.get("purge_receipts", -1e9) >= PURGE_EVERY_SECONDS:
        _last_run["purge_receipts"] = now
        with session_scope(runtime.sessions()) as session:
            purged = purge_expired_receipts(session)
        if purged:
            log.info("purged %d expired receipts", purged)


def purge_expired_receipts(session) -> int:
    return session.execute(text("DELETE FROM receipts WHERE expires_at < now()")).rowcount
