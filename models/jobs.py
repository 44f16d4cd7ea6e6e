"""Job lifecycle on the jobs table: create, claim (conditional UPDATE with a lease), renew, progress,
finish, fail, and the sweeper's queries. Functions take a session and never commit it."""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import orjson

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.kinds import JobKind
from models.tables import Job, JobRecordError

ERROR_TEXT_CAP = 4000
RECORD_TEXT_CAP = 8000  # the input of a rejected record, as text, kept with its error


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    tenant_id: str
    kind: str
    attempts: int
    checkpoint: int
    params: dict
    counts: dict
    blob_sha256: str | None
    created_by: str | None
    payload: bytes | None = None  # the job's input when it is kept in the row (see create_job)


def split_payload(payload: bytes | None) -> tuple[bytes | None, str | None]:
    """(payload, payload_text) for a job row: UTF-8 without a NUL goes in the text column (sent and
    read back as it is, half the size of bytea's hex), anything else in the bytea one."""
    if payload is None or b"\x00" in payload:
        return payload, None
    try:
        return None, payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload, None


def create_job(session: Session, *, tenant_id: str, kind: JobKind, params: dict | None = None,
               idempotency_key: str | None = None, payload_hash: str | None = None,
               blob_sha256: str | None = None, created_by: str | None = None, max_attempts: int = 5,
               progress_total: int | None = None, parent_id: uuid.UUID | None = None,
               payload: bytes | None = None) -> tuple[Job, bool]:
    """Insert a QUEUED job, or return the existing one with the same (tenant, kind, idempotency key).
    Returns (job, created)."""
    job_id = uuid.uuid4()
    payload, payload_text = split_payload(payload)
    stmt = pg_insert(Job).values(
        id=job_id, tenant_id=tenant_id, kind=kind.name, queue=kind.queue, params=params or {},
        idempotency_key=idempotency_key, payload_hash=payload_hash, blob_sha256=blob_sha256,
        created_by=created_by, max_attempts=max_attempts, progress_total=progress_total,
        parent_id=parent_id, enqueued_at=text("now()"), payload=payload, payload_text=payload_text,
    )
    if idempotency_key is not None:
        stmt = stmt.on_conflict_do_nothing(index_elements=["tenant_id", "kind", "idempotency_key"])
    inserted = session.execute(stmt.returning(Job.id)).scalar_one_or_none()
    if inserted is not None:
        return session.get(Job, inserted), True
    existing = session.execute(
        select(Job).where(Job.tenant_id == tenant_id, Job.kind == kind.name, Job.idempotency_key == idempotency_key)
    ).scalar_one()
    return existing, False


def create_job_if_absent(session: Session, *, tenant_id: str, kind: JobKind, idempotency_key: str,
                         params: dict | None = None, parent_id: uuid.UUID | None = None):
    """Insert a QUEUED job unless one with the same (tenant, kind, idempotency key) exists; one statement.
    Returns the new job's id, or None when it existed."""
    return session.execute(text("""
        INSERT INTO jobs (id, tenant_id, kind, queue, params, idempotency_key, parent_id, enqueued_at)
        VALUES (CAST(:id AS uuid), :t, :kind, :queue, CAST(:params AS jsonb), :key, CAST(:parent AS uuid), now())
        ON CONFLICT (tenant_id, kind, idempotency_key) DO NOTHING
        RETURNING id
    """), {"id": str(uuid.uuid4()), "t": tenant_id, "kind": kind.name, "queue": kind.queue,
           "params": _json(params or {}), "key": idempotency_key,
           "parent": None if parent_id is None else str(parent_id)}).scalar()


def claim(session: Session, job_id, lease_seconds: int) -> Claimed | None:
    """Take a job for this worker. Only a QUEUED job, or a RUNNING one whose lease ran out, can be
    claimed; anything else (a duplicate delivery, a finished job) answers None.

    The claim's commit does not wait for the WAL flush: a claim lost in a crash leaves the job QUEUED,
    which the sweeper sends again, and the job's first durable commit (its work, or its end) flushes the
    claim with it."""
    row = session.execute(text("""
        UPDATE jobs SET status = 'RUNNING', attempts = attempts + 1,
               lease_until = clock_timestamp() + make_interval(secs => :lease),
               started_at = COALESCE(started_at, clock_timestamp()), updated_at = clock_timestamp()
          FROM (SELECT set_config('synchronous_commit', 'off', true)) AS commit_mode
         WHERE id = :id
           AND (status = 'QUEUED' OR (status = 'RUNNING' AND lease_until < clock_timestamp()))
        RETURNING id, tenant_id, kind, attempts, max_attempts, checkpoint, params, counts, blob_sha256, created_by,
                  payload, payload_text
    """), {"id": str(job_id), "lease": lease_seconds}).mappings().first()
    if row is None:
        return None
    if row["attempts"] > row["max_attempts"]:
        fail(session, job_id, "max_attempts_exceeded",
             f"the job was started {row['max_attempts']} times without finishing")
        return None
    return Claimed(id=row["id"], tenant_id=row["tenant_id"], kind=row["kind"], attempts=row["attempts"],
                   checkpoint=row["checkpoint"], params=row["params"], counts=row["counts"],
                   blob_sha256=row["blob_sha256"], created_by=row["created_by"],
                   payload=(bytes(row["payload"]) if row["payload"] is not None
                            else None if row["payload_text"] is None else row["payload_text"].encode()))


def make_durable(session: Session, job_id) -> None:
    """Commit, and return once the job and every commit made before it (lazy ones included) are on disk:
    a synchronous commit that writes (a no-op update of the job row) flushes all the WAL before it."""
    session.execute(text("""
        UPDATE jobs SET updated_at = updated_at FROM (SELECT set_config('synchronous_commit', 'on', true)) AS m
         WHERE id = :id"""), {"id": str(job_id)})
    session.commit()


def renew(session: Session, job_id, lease_seconds: int) -> bool:
    return session.execute(text("""
        UPDATE jobs SET lease_until = clock_timestamp() + make_interval(secs => :lease), updated_at = clock_timestamp()
         WHERE id = :id AND status = 'RUNNING'
    """), {"id": str(job_id), "lease": lease_seconds}).rowcount == 1


def progress(session: Session, job_id, *, done: int, total: int | None = None, checkpoint: int | None = None,
             counts: dict | None = None, lease_seconds: int | None = None) -> bool:
    """Record progress (and renew the lease). Counts are replaced, not added, so a retried chunk that
    recomputes them cannot double-count. Returns False when the job is no longer ours to run."""
    return session.execute(text("""
        UPDATE jobs SET progress_done = :done,
               progress_total = COALESCE(:total, progress_total),
               checkpoint = COALESCE(:checkpoint, checkpoint),
               counts = COALESCE(CAST(:counts AS jsonb), counts),
               lease_until = CASE WHEN :lease IS NULL THEN lease_until
                                  ELSE clock_timestamp() + make_interval(secs => :lease) END,
               updated_at = clock_timestamp()
         WHERE id = :id AND status = 'RUNNING'
    """), {"id": str(job_id), "done": done, "total": total, "checkpoint": checkpoint,
           "counts": None if counts is None else _json(counts), "lease": lease_seconds}).rowcount == 1


def finish(session: Session, job_id, *, counts: dict | None = None, result: dict | None = None) -> bool:
    return session.execute(text("""
        UPDATE jobs SET status = 'COMPLETED', counts = COALESCE(CAST(:counts AS jsonb), counts),
               result = COALESCE(CAST(:result AS jsonb), result), payload = NULL, payload_text = NULL,
               progress_done = GREATEST(progress_done, COALESCE(progress_total, progress_done)),
               lease_until = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE id = :id AND status = 'RUNNING'
    """), {"id": str(job_id), "counts": None if counts is None else _json(counts),
           "result": None if result is None else _json(result)}).rowcount == 1


def fail(session: Session, job_id, code: str, detail: str) -> bool:
    return session.execute(text("""
        UPDATE jobs SET status = 'FAILED', error_code = :code, error_detail = :detail,
               lease_until = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE id = :id AND status IN ('QUEUED', 'RUNNING')
    """), {"id": str(job_id), "code": code, "detail": _clean(detail or "")[:ERROR_TEXT_CAP]}).rowcount == 1


def release(session: Session, job_id) -> None:
    """Give a RUNNING job back to the queue (a transient error: the next delivery resumes it)."""
    session.execute(text("""
        UPDATE jobs SET status = 'QUEUED', lease_until = NULL, enqueued_at = clock_timestamp(),
               updated_at = clock_timestamp()
         WHERE id = :id AND status = 'RUNNING'
    """), {"id": str(job_id)})


def cancel(session: Session, job_id) -> bool:
    return session.execute(text("""
        UPDATE jobs SET status = 'CANCELLED', lease_until = NULL, finished_at = clock_timestamp(),
               updated_at = clock_timestamp()
         WHERE id = :id AND status IN ('QUEUED', 'RUNNING')
    """), {"id": str(job_id)}).rowcount == 1


def mark_enqueued(session: Session, job_ids) -> None:
    session.execute(text("UPDATE jobs SET enqueued_at = clock_timestamp() WHERE id = ANY(CAST(:ids AS uuid[]))"),
                    {"ids": [str(j) for j in job_ids]})


def sweep(session: Session, *, requeue_after_seconds: float) -> dict:
    """Find work whose message is lost: expired leases go back to QUEUED (or FAILED when out of
    attempts); QUEUED jobs not enqueued for a while are returned to be sent again. A terminal job is
    never reopened."""
    expired_failed = session.execute(text("""
        UPDATE jobs SET status = 'FAILED', error_code = 'max_attempts_exceeded',
               error_detail = 'the job lease expired on its last allowed attempt',
               lease_until = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
         WHERE status = 'RUNNING' AND lease_until < clock_timestamp() AND attempts >= max_attempts
        RETURNING id
    """)).scalars().all()
    reclaimed = session.execute(text("""
        UPDATE jobs SET status = 'QUEUED', lease_until = NULL, updated_at = clock_timestamp(),
               enqueued_at = clock_timestamp() - make_interval(secs => :age)
         WHERE status = 'RUNNING' AND lease_until < clock_timestamp()
        RETURNING id
    """), {"age": requeue_after_seconds + 1}).scalars().all()
    stale = session.execute(text("""
        UPDATE jobs SET enqueued_at = clock_timestamp()
         WHERE id IN (SELECT id FROM jobs WHERE status = 'QUEUED'
                        AND (enqueued_at IS NULL OR enqueued_at < clock_timestamp() - make_interval(secs => :age))
                      ORDER BY created_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
        RETURNING id, queue
    """), {"age": requeue_after_seconds}).all()
    return {"failed": list(expired_failed), "reclaimed": list(reclaimed),
            "requeue": [(row.id, row.queue) for row in stale]}


def record_errors(session: Session, job_id, errors: list[dict]) -> None:
    """Store per-record errors (and warnings): dicts with position, record_id, code, message, path,
    record, and optionally severity ('error' by default, or 'warning')."""
    if not errors:
        return
    # one statement of arrays, the same text for any number of rows (a VALUES list of N rows was compiled
    # anew for every N: most of a worker's time on a batch full of bad records)
    session.execute(_RECORD_ERRORS, {
        "job": str(job_id), "positions": [e["position"] for e in errors],
        "ids": [_cap(e.get("record_id"), 512) for e in errors], "codes": [e["code"] for e in errors],
        "messages": [_cap(e["message"], 2000) for e in errors], "paths": [_cap(e.get("path"), 512) for e in errors],
        "records": [_cap(e.get("record"), RECORD_TEXT_CAP) for e in errors],
        "severities": [e.get("severity", "error") for e in errors]})


_RECORD_ERRORS = text("""
    INSERT INTO job_record_errors (job_id, position, record_id, code, message, path, record, severity)
    SELECT CAST(:job AS uuid), e.position, e.record_id, e.code, e.message, e.path, e.record, e.severity
      FROM unnest(CAST(:positions AS bigint[]), CAST(:ids AS text[]), CAST(:codes AS text[]),
                  CAST(:messages AS text[]), CAST(:paths AS text[]), CAST(:records AS text[]),
                  CAST(:severities AS text[])) AS e(position, record_id, code, message, path, record, severity)
    ON CONFLICT (job_id, position, code) DO NOTHING
""")


def errors_of(session: Session, job_id, *, severity: str, limit: int) -> list[JobRecordError]:
    """The job's first `limit` per-record errors (or warnings) of one severity, in input order."""
    return list(session.execute(select(JobRecordError).where(JobRecordError.job_id == job_id,
                                                             JobRecordError.severity == severity)
                                .order_by(JobRecordError.position, JobRecordError.id).limit(limit)).scalars())


def count_errors(session: Session, job_id, *, severity: str) -> int:
    return session.execute(select(func.count()).select_from(JobRecordError).where(
        JobRecordError.job_id == job_id, JobRecordError.severity == severity)).scalar_one()


def first_errors(session: Session, job_id, limit: int) -> list[JobRecordError]:
    """The job's first `limit` per-record errors and warnings, in input order."""
    return list(session.execute(select(JobRecordError).where(JobRecordError.job_id == job_id)
                                .order_by(JobRecordError.position, JobRecordError.id).limit(limit)).scalars())


def _cap(value, limit):
    if value is None:
        return None
    value = _clean(str(value))
    return value if len(value) <= limit else value[:limit] + "…"


def _clean(text: str) -> str:
    """Text any column takes: a NUL becomes the escape \\u0000, a lone surrogate its backslash escape."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


_JSON_DEPTH = 64


def _json(value) -> str:
    """The job's own JSON (counts, result) as text jsonb always takes: when the fast writer refuses the
    value (a lone surrogate, an integer beyond 64 bits, deep nesting) or it holds a NUL, a cleaned copy
    is written instead, so a job's ending can always be stored."""
    try:
        text = orjson.dumps(value, default=str).decode()
    except (TypeError, ValueError):
        text = None
    if text is not None and "\\u0000" not in text:
        return text
    return orjson.dumps(_storable(value, 0)).decode()


def _storable(node, depth):
    if isinstance(node, str):
        return _clean(node)
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return node if -(2 ** 63) <= node < 2 ** 64 else str(node)
    if isinstance(node, float):
        return node if math.isfinite(node) else str(node)
    if depth >= _JSON_DEPTH:
        return "…"
    if isinstance(node, dict):
        return {_clean(str(k)): _storable(v, depth + 1) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_storable(v, depth + 1) for v in node]
    return _clean(str(node))
