"""Run one job: claim it, hand it to its kind's pipeline function, and record how it ended.
Every delivery of the same job id goes through claim(), so duplicates and redeliveries are harmless."""
from __future__ import annotations

import logging
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg2 import errorcodes
from sqlalchemy.exc import DBAPIError, OperationalError

from config.logging import current_job_id
from models import jobs
from models.db import session_scope
from models.ids import parse_uuid
from models.tables import TERMINAL_STATUSES, Job
from workers import doorbell
from workers.errors import JobFailed, JobLost, TransientError
from workers.runtime import Runtime

log = logging.getLogger(__name__)

TRANSIENT_PGCODES = {errorcodes.SERIALIZATION_FAILURE, errorcodes.DEADLOCK_DETECTED,
                     errorcodes.LOCK_NOT_AVAILABLE, errorcodes.QUERY_CANCELED,
                     errorcodes.ADMIN_SHUTDOWN, errorcodes.CANNOT_CONNECT_NOW}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError | OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "pgcode", None) in TRANSIENT_PGCODES or exc.connection_invalidated
    return False


@dataclass
class JobContext:
    runtime: Runtime
    job: jobs.Claimed
    counts: dict = field(default_factory=dict)

    @property
    def settings(self):
        return self.runtime.settings

    @contextmanager
    def session(self):
        with session_scope(self.runtime.sessions()) as session:
            yield session

    def progress(self, session, *, done: int, total: int | None = None, checkpoint: int | None = None,
                 counts: dict | None = None) -> None:
        """Write progress in the caller's transaction (so it commits with the chunk it describes)."""
        if counts is not None:
            self.counts = dict(counts)
        ok = jobs.progress(session, self.job.id, done=done, total=total, checkpoint=checkpoint,
                           counts=counts, lease_seconds=self.settings.job_lease_seconds)
        if not ok:
            raise JobLost(f"job {self.job.id} is no longer running here")

    def hooks(self, namespace: str) -> list:
        """The engine's after-apply hooks for `namespace` (pass them to apply_chunk)."""
        return self.runtime.hooks_for(namespace)

    def renew(self) -> None:
        """Extend the lease now, in its own transaction. Raises JobLost when the job is no longer ours."""
        with self.session() as session:
            if not jobs.renew(session, self.job.id, self.settings.job_lease_seconds):
                raise JobLost(f"job {self.job.id} is no longer running here")

    def heartbeat(self):
        """A function to call often during a long step without commits (a scan, say): it renews the lease
        at most every third of the lease time."""
        every = max(1.0, self.settings.job_lease_seconds / 3)
        last = [time.monotonic()]

        def tick() -> None:
            now = time.monotonic()
            if now - last[0] >= every:
                last[0] = now
                self.renew()
        return tick


def run_job(runtime: Runtime, job_id: str) -> str:
    """Returns how the delivery ended: 'completed', 'failed', 'skipped' or raises TransientError."""
    token = current_job_id.set(str(job_id))
    try:
        with session_scope(runtime.sessions()) as session:
            claimed = jobs.claim(session, job_id, runtime.settings.job_lease_seconds)
        if claimed is None:
            log.info("job not claimable (finished, running elsewhere or unknown); delivery dropped")
            _ring_if_terminal(runtime, job_id)
            return "skipped"
        kind = runtime.registry.get(claimed.kind)
        ctx = JobContext(runtime=runtime, job=claimed, counts=dict(claimed.counts or {}))
        if kind is None:
            _end_failed(runtime, job_id, "unknown_kind", f"no pipeline for job kind {claimed.kind!r}")
            return "failed"
        try:
            result = kind.run(ctx)
        except JobFailed as exc:
            _end_failed(runtime, job_id, exc.code, exc.detail)
            return "failed"
        except JobLost:
            log.warning("job lost its lease or was cancelled; stopping")
            return "skipped"
        except Exception as exc:
            if is_transient(exc):
                log.warning("transient error, job released for another try", exc_info=True)
                with session_scope(runtime.sessions()) as session:
                    jobs.release(session, job_id)
                raise TransientError(type(exc).__name__) from exc
            log.exception("job crashed")
            _end_failed(runtime, job_id, "internal_error",
                        f"{type(exc).__name__} while running the job; see the worker log "
                        f"({traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]})")
            return "failed"
        with session_scope(runtime.sessions()) as session:
            jobs.finish(session, job_id, counts=ctx.counts, result=result)
        doorbell.ring(runtime.redis_client(), job_id)
        log.info("job completed", extra={"kind": claimed.kind})
        return "completed"
    finally:
        current_job_id.reset(token)


def _end_failed(runtime: Runtime, job_id, code: str, detail: str) -> None:
    with session_scope(runtime.sessions()) as session:
        jobs.fail(session, job_id, code, detail)
    doorbell.ring(runtime.redis_client(), job_id)
    log.warning("job failed: %s", code)


def _ring_if_terminal(runtime: Runtime, job_id) -> None:
    parsed = parse_uuid(str(job_id))
    with session_scope(runtime.sessions()) as session:
        job = session.get(Job, parsed) if parsed is not None else None
        if job is not None and job.status in TERMINAL_STATUSES:
            doorbell.ring(runtime.redis_client(), job_id)
