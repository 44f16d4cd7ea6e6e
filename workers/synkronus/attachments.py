"""The sweep of Synkronus attachments no record references: a maintenance job per tenant, submitted by
the scheduler at most every SYNKRONUS_ATTACHMENT_SWEEP_EVERY_SECONDS (default 3600). An attachment goes
when no live observation has named it for SYNKRONUS_ATTACHMENT_GRACE_SECONDS (default 7 days; counted
from the first sweep that found it unreferenced, so a fresh upload waits for its push)."""
from __future__ import annotations

import time

from models.db import session_scope
from models.synkronus import SWEEP_ATTACHMENTS
from models.synkronus import attachments as store
from workers.api import submit_job

DEFAULT_GRACE_SECONDS = 7 * 24 * 3600
DEFAULT_EVERY_SECONDS = 3600


def _seconds(settings, name: str, default: float) -> float:
    try:
        return max(0.0, float(settings.option("synkronus", name) or default))
    except ValueError:
        return default


def grace_seconds(settings) -> float:
    return _seconds(settings, "attachment_grace_seconds", DEFAULT_GRACE_SECONDS)


def run_sweep(ctx):
    with ctx.session() as session:
        gone = store.sweep(session, ctx.job.tenant_id, grace_seconds=grace_seconds(ctx.settings))
        ctx.progress(session, done=1, total=1, counts={"swept": len(gone)})
    return {"swept": len(gone), "attachment_ids": gone[:100]}


def schedule_sweep(runtime, celery_app, now: float | None = None) -> int:
    """Submit this period's sweep job for every tenant with attachments (once per period: the period
    is the idempotency key). The number of jobs submitted."""
    every = max(1.0, _seconds(runtime.settings, "attachment_sweep_every_seconds", DEFAULT_EVERY_SECONDS))
    period = int((time.time() if now is None else now) // every)
    submitted = 0
    with session_scope(runtime.sessions()) as session:
        for tenant in store.tenants_with_attachments(session):
            _, created = submit_job(session, celery_app, tenant_id=tenant, kind=SWEEP_ATTACHMENTS,
                                    idempotency_key=f"sweep-{period}", created_by="scheduler")
            submitted += created
    return submitted
