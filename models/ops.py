"""What the ops console reads and the one job control it adds (retry): queue depth and the oldest
waiting job, running jobs, recent failures, filtered job lists, a job's failed rows, devices. Every
read is bounded by an index (the open-jobs partial index, or created/finished time), so none of them
counts the whole jobs table. Functions take a session and never commit it."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Index, func, or_, select, text
from sqlalchemy.orm import Session

from models.devices import Device
from models.tables import ExportSchedule, Job, JobRecordError
from models.users import tenant_covers

# Indexes the console's lists use (declared here, beside the queries that need them).
Index("ix_jobs_created", Job.created_at)
Index("ix_jobs_status_created", Job.status, Job.created_at)
Index("ix_jobs_kind_created", Job.kind, Job.created_at)
Index("ix_jobs_failed_finished", Job.finished_at, postgresql_where=text("status = 'FAILED'"))

PAGE_MAX = 200


def _subtree(column, tenant: str | None):
    """A filter: `tenant` and the tenants below it (None: every tenant)."""
    if tenant is None:
        return None
    below = tenant.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
    return or_(column == tenant, column.like(below, escape="\\"))


def _where(stmt, *conditions):
    for condition in conditions:
        if condition is not None:
            stmt = stmt.where(condition)
    return stmt


def queue_depths(session: Session, scope: str | None) -> dict[str, dict]:
    """Per queue: QUEUED and RUNNING jobs, and when the oldest waiting one was created."""
    stmt = _where(select(Job.queue, Job.status, func.count(), func.min(Job.created_at))
                  .where(Job.status.in_(("QUEUED", "RUNNING"))).group_by(Job.queue, Job.status),
                  _subtree(Job.tenant_id, scope))
    out: dict[str, dict] = {}
    for queue, status, number, oldest in session.execute(stmt):
        entry = out.setdefault(queue, {"queued": 0, "running": 0, "oldest_queued_at": None})
        entry[status.lower()] = number
        if status == "QUEUED":
            entry["oldest_queued_at"] = oldest
    return out


def open_jobs_by_kind(session: Session) -> list[tuple[str, str, int]]:
    """(kind, status, number) of QUEUED and RUNNING jobs (every tenant: for /metrics)."""
    return list(session.execute(select(Job.kind, Job.status, func.count())
                                .where(Job.status.in_(("QUEUED", "RUNNING"))).group_by(Job.kind, Job.status)))


def running_jobs(session: Session, scope: str | None, limit: int = 50) -> list[Job]:
    stmt = _where(select(Job).where(Job.status == "RUNNING").order_by(Job.started_at).limit(limit),
                  _subtree(Job.tenant_id, scope))
    return list(session.execute(stmt).scalars())


def recent_failures(session: Session, scope: str | None, *, hours: int = 24, limit: int = 20) -> tuple[int, list[Job]]:
    since = text(f"now() - interval '{int(hours)} hours'")
    base = _where(select(Job).where(Job.status == "FAILED", Job.finished_at > since),
                  _subtree(Job.tenant_id, scope))
    number = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    rows = session.execute(base.order_by(Job.finished_at.desc()).limit(limit)).scalars()
    return number, list(rows)


def list_jobs(session: Session, scope: str | None, *, status: str | None = None, kind: str | None = None,
              tenant: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
              before: dt.datetime | None = None, limit: int = 50) -> list[Job]:
    """Newest first, keyset-paged on created_at (`before`: the created_at of the last row seen). `scope`
    is the subtree the caller sees, `tenant` the one it asks for: the narrower of the two applies, and
    a tenant outside the scope matches nothing (without reading a row)."""
    if tenant and scope is not None:
        if tenant_covers(scope, tenant):
            scope = None
        elif tenant_covers(tenant, scope):
            tenant = None
        else:
            return []
    stmt = _where(select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(min(limit, PAGE_MAX)),
                  _subtree(Job.tenant_id, scope),
                  Job.status == status if status else None,
                  Job.kind == kind if kind else None,
                  _subtree(Job.tenant_id, tenant) if tenant else None,
                  Job.created_at >= since if since else None,
                  Job.created_at < until if until else None,
                  Job.created_at < before if before else None)
    return list(session.execute(stmt).scalars())


def job_kinds(session: Session) -> list[str]:
    """The kinds jobs have (a loose index scan: one probe per distinct kind, not a pass over all jobs)."""
    return list(session.execute(text("""
        WITH RECURSIVE k AS (
            (SELECT kind FROM jobs ORDER BY kind LIMIT 1)
            UNION ALL
            SELECT (SELECT kind FROM jobs WHERE kind > k.kind ORDER BY kind LIMIT 1) FROM k WHERE k.kind IS NOT NULL
        ) SELECT kind FROM k WHERE kind IS NOT NULL
    """)).scalars())


def retry(session: Session, job_id: uuid.UUID, *, seen_attempts: int) -> bool:
    """Queue a FAILED job again for one more attempt: it resumes from its checkpoint (what it committed
    stays). `seen_attempts` is the attempt count the caller saw: a second click on the same failure (or
    a retry of a job that has run again since) changes nothing, so the control is idempotent."""
    return session.execute(text("""
        UPDATE jobs SET status = 'QUEUED', error_code = NULL, error_detail = NULL, finished_at = NULL,
               lease_until = NULL, max_attempts = GREATEST(max_attempts, attempts + 1),
               enqueued_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE id = :id AND status = 'FAILED' AND attempts = :seen
    """), {"id": str(job_id), "seen": seen_attempts}).rowcount == 1


def failed_rows(session: Session, job_id: uuid.UUID, *, batch: int = 1000):
    """Every refused record of a job (severity 'error'), in input order, read in keyset batches."""
    after = (-1, -1)
    while True:
        rows = list(session.execute(
            select(JobRecordError).where(JobRecordError.job_id == job_id, JobRecordError.severity == "error",
                                         func.row(JobRecordError.position, JobRecordError.id) > func.row(*after))
            .order_by(JobRecordError.position, JobRecordError.id).limit(batch)).scalars())
        yield from rows
        if len(rows) < batch:
            return
        after = (rows[-1].position, rows[-1].id)


def list_devices(session: Session, scope: str | None, *, tenant: str | None = None, dialect: str | None = None,
                 silent_days: int | None = None, limit: int = 100) -> list[Device]:
    """Devices, the longest silent first when `silent_days` is given, else the most recently seen."""
    stmt = _where(select(Device), _subtree(Device.tenant_id, scope),
                  _subtree(Device.tenant_id, tenant) if tenant else None,
                  Device.dialect == dialect if dialect else None)
    if silent_days is not None:
        stmt = stmt.where(Device.last_seen_at < text(f"now() - interval '{int(silent_days)} days'")) \
                   .order_by(Device.last_seen_at)
    else:
        stmt = stmt.order_by(Device.last_seen_at.desc())
    return list(session.execute(stmt.limit(min(limit, PAGE_MAX))).scalars())


def device_summary(session: Session, scope: str | None, silent_days: int) -> dict:
    stmt = _where(select(func.count(), func.count().filter(
        Device.last_seen_at < text(f"now() - interval '{int(silent_days)} days'"))).select_from(Device),
        _subtree(Device.tenant_id, scope))
    total, silent = session.execute(stmt).one()
    return {"total": total, "silent": silent}


def pull_lag(session: Session) -> list[tuple[str, str, int, float, int]]:
    """Per dialect and tenant: (dialect, tenant, max lag, mean lag, devices), where a device's lag is its
    tenant's version counter minus the version it has pulled up to. Only dialects whose clients keep a
    cursor have one: Synkronus (the pull's change cutoff) and mSupply (what a site has acknowledged);
    DIGIT clients ask for forms and file status, not a change feed, so they have none."""
    return [tuple(row) for row in session.execute(text("""
        SELECT d.dialect, d.tenant_id, MAX(GREATEST(c.value - d.last_pulled_version, 0)),
               AVG(GREATEST(c.value - d.last_pulled_version, 0))::float8, COUNT(*)
          FROM devices d JOIN sync_counters c ON c.tenant_id = d.tenant_id
         WHERE d.last_pulled_version IS NOT NULL
         GROUP BY d.dialect, d.tenant_id
    """))]


def list_schedules(session: Session, scope: str | None, *, limit: int = PAGE_MAX) -> list[tuple]:
    """Export schedules in the scope, by tenant and name, each with its last run's job (or None)."""
    stmt = _where(select(ExportSchedule, Job).outerjoin(Job, Job.id == ExportSchedule.last_job_id),
                  _subtree(ExportSchedule.tenant_id, scope))
    return [tuple(row) for row in session.execute(
        stmt.order_by(ExportSchedule.tenant_id, ExportSchedule.name).limit(limit))]
