"""Run one job: claim it, hand it to its kind's pipeline function, and record how it ended.
Every delivery of the same job id goes through claim(), so duplicates and redeliveries are harmless."""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import errorcodes
from sqlalchemy.exc import DBAPIError, OperationalError

from config import metrics
from config.logging import current_job_id
from models import jobs
from models.db import session_scope
from models.ids import parse_uuid
from models.tables import TERMINAL_STATUSES, Job
from workers import doorbell, heartbeat
from workers.errors import JobFailed, JobLost, TransientError
from workers.runtime import Runtime

log = logging.getLogger(__name__)

TRANSIENT_PGCODES = {errorcodes.SERIALIZATION_FAILURE, errorcodes.DEADLOCK_DETECTED,
                     errorcodes.LOCK_NOT_AVAILABLE, errorcodes.QUERY_CANCELED,
                     errorcodes.ADMIN_SHUTDOWN, errorcodes.CANNOT_CONNECT_NOW}
# SQLSTATE classes that say the data was refused, not that the database had a bad moment: 22 data
# exception (a NUL in text, a bad number), 23 integrity constraint, 54 program limit ("index row
# requires … bytes"; psycopg2 reports this class as an OperationalError). Another try cannot succeed.
DATA_ERROR_CLASSES = {"22", "23", "54"}


def _pgcode(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    code = getattr(orig, "pgcode", None)
    return code if isinstance(code, str) else None


def is_data_error(exc: BaseException) -> bool:
    """The database refused a value of this job (see DATA_ERROR_CLASSES)."""
    if not isinstance(exc, DBAPIError | psycopg2.Error):
        return False
    code = _pgcode(exc)
    return code is not None and code[:2] in DATA_ERROR_CLASSES


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if is_data_error(exc):
        return False
    if isinstance(exc, DBAPIError):
        return (isinstance(exc, OperationalError) or _pgcode(exc) in TRANSIENT_PGCODES
                or exc.connection_invalidated)
    if isinstance(exc, psycopg2.Error):  # raised on the raw connection (COPY), not wrapped
        return isinstance(exc, psycopg2.OperationalError) or _pgcode(exc) in TRANSIENT_PGCODES
    return False


@dataclass
class JobContext:
    runtime: Runtime
    job: jobs.Claimed
    counts: dict = field(default_factory=dict)
    finished: bool = False  # the pipeline ended the job in its own last transaction (finish)

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

    def finish(self, session, result: dict | None = None) -> None:
        """End the job COMPLETED in the caller's transaction, so the job's last work and its end commit
        together (the runner then has nothing left to commit). Raises JobLost when it is no longer ours."""
        if not jobs.finish(session, self.job.id, counts=self.counts, result=result):
            raise JobLost(f"job {self.job.id} is no longer running here")
        self.finished = True

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
        heartbeat.working_on(claimed.id, claimed.kind)
        started = time.monotonic()
        kind = runtime.registry.get(claimed.kind)
        ctx = JobContext(runtime=runtime, job=claimed, counts=dict(claimed.counts or {}))
        if kind is None:
            _end_failed(runtime, job_id, "unknown_kind", f"no pipeline for job kind {claimed.kind!r}")
            return _ended(claimed, "failed", started)
        try:
            result = kind.run(ctx)
        except JobFailed as exc:
            _end_failed(runtime, job_id, exc.code, exc.detail)
            return _ended(claimed, "failed", started)
        except JobLost:
            log.warning("job lost its lease or was cancelled; stopping")
            return "skipped"
        except Exception as exc:
            return _ended(claimed, _crashed(runtime, job_id, exc), started)
        try:
            if not ctx.finished:
                with session_scope(runtime.sessions()) as session:
                    jobs.finish(session, job_id, counts=ctx.counts, result=result)
        except Exception as exc:  # a result that cannot be stored is a bug, never a retry
            if is_transient(exc):
                return _ended(claimed, _crashed(runtime, job_id, exc), started)
            log.exception("the job's result could not be stored")
            _end_failed(runtime, job_id, "internal_error",
                        f"{type(exc).__name__} while storing the job's result; see the worker log")
            return _ended(claimed, "failed", started)
        doorbell.ring(runtime.redis_client(), job_id)
        log.info("job completed", extra={"kind": claimed.kind})
        return _ended(claimed, "completed", started)
    finally:
        heartbeat.working_on(None, None)
        current_job_id.reset(token)


def _ended(claimed: jobs.Claimed, outcome: str, started: float) -> str:
    """Count a delivery that ended the job (completed or failed) in the job metrics."""
    if outcome in ("completed", "failed"):
        metrics.job_ended(claimed.kind, outcome.upper(), time.monotonic() - started)
    return outcome


def _crashed(runtime: Runtime, job_id, exc: Exception) -> str:
    """An exception out of a pipeline: a transient one releases the job for another try; anything else
    ends it. What is stored for clients and ops names the error's type or SQLSTATE, never the driver's
    text or the row it quotes (that goes to the worker log only)."""
    if is_transient(exc):
        log.warning("transient error, job released for another try", exc_info=True)
        with session_scope(runtime.sessions()) as session:
            jobs.release(session, job_id)
        raise TransientError(type(exc).__name__) from exc
    if is_data_error(exc):
        log.error("the database refused a value of this job", exc_info=True)
        _end_failed(runtime, job_id, "storage_rejected",
                    f"the database refused a value of this job (SQLSTATE {_pgcode(exc)}); see the worker log")
        return "failed"
    log.exception("job crashed")
    _end_failed(runtime, job_id, "internal_error", f"{type(exc).__name__} while running the job; see the worker log")
    return "failed"


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
