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
    for hook in runtime.registry.periodic():  # the dialects' periodic work
        hook(runtime, celery_app)
    with session_scope(runtime.sessions()) as session:
        analysed = analyze_stale_tables(session)
    if analysed:
        log.info("refreshed planner statistics for %s", ", ".join(analysed))
    if now - _last_run.get("purge_receipts", -1e9) >= PURGE_EVERY_SECONDS:
        _last_run["purge_receipts"] = now
        with session_scope(runtime.sessions()) as session:
            purged = purge_expired_receipts(session)
        if purged:
            log.info("purged %d expired receipts", purged)


def purge_expired_receipts(session) -> int:
    return session.execute(text("DELETE FROM receipts WHERE expires_at < now()")).rowcount


def analyze_stale_tables(session, min_changes: int = 1000, fraction: float = 0.1) -> list[str]:
    """ANALYZE our tables that changed a lot since their last analyze. Bulk loads outrun autovacuum's
    schedule, and plans built on 'the table is empty' statistics turn key lookups into scans. A table
    whose autovacuum was turned off (`ALTER TABLE … SET (autovacuum_enabled = false)`) is left alone:
    whoever did that keeps its statistics."""
    stale = session.execute(text("""
        SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.schemaname = current_schema()
           AND s.n_mod_since_analyze > GREATEST(:min_changes, :fraction * s.n_live_tup)
           AND NOT COALESCE('autovacuum_enabled=false' = ANY(c.reloptions), false)
    """), {"min_changes": min_changes, "fraction": fraction}).scalars().all()
    for table in stale:
        session.execute(text(f'ANALYZE "{table}"'))
    return list(stale)
