"""The sweeper: finds jobs whose message was lost or whose worker died, and sends them again.
It needs only PostgreSQL to decide; Redis only to send."""
from __future__ import annotations

import logging
import time

from models import jobs
from models.db import session_scope
from workers import api
from workers.schedule import run_due

log = logging.getLogger(__name__)


def sweep_once(runtime, celery_app) -> dict:
    with session_scope(runtime.sessions()) as session:
        found = jobs.sweep(session, requeue_after_seconds=runtime.settings.requeue_after_seconds)
    sent = sum(1 for job_id, queue in found["requeue"] if api.send(celery_app, str(job_id), queue))
    summary = {"failed": len(found["failed"]), "reclaimed": len(found["reclaimed"]),
               "requeued": len(found["requeue"]), "sent": sent}
    if any(summary.values()):
        log.info("sweep: %s", summary)
    return summary


def run_scheduler(runtime, celery_app, *, stop=lambda: False) -> None:
    """The `beat` process: sweep every interval, and run the periodic maintenance jobs."""
    interval = runtime.settings.sweep_interval_seconds
    next_sweep = 0.0
    while not stop():
        now = time.monotonic()
        if now >= next_sweep:
            try:
                sweep_once(runtime, celery_app)
                run_due(runtime, celery_app)
            except Exception:
                log.exception("sweep failed; trying again next period")
            next_sweep = now + interval
        time.sleep(min(1.0, max(0.05, next_sweep - time.monotonic())))
