"""Receipts: the exact answer to a push, kept under (tenant, client, transmission id) with the payload's
hash, so a replay gets the same bytes and a reused id with another payload is refused."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.jobs import split_payload
from models.tables import Receipt


def get(session: Session, tenant_id: str, client_id: str, transmission_id: str) -> Receipt | None:
    return session.execute(select(Receipt).where(
        Receipt.tenant_id == tenant_id, Receipt.client_id == client_id, Receipt.transmission_id == transmission_id,
        Receipt.expires_at > text("now()"))).scalar_one_or_none()


def claim(session: Session, *, tenant_id: str, client_id: str, transmission_id: str, payload_hash: str,
          retention_days: int) -> bool:
    """Reserve the key for this payload. False when someone holds it already (replay or race); an
    expired receipt is replaced."""
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=retention_days)
    stmt = pg_insert(Receipt).values(tenant_id=tenant_id, client_id=client_id, transmission_id=transmission_id,
                                     payload_hash=payload_hash, expires_at=expires)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "client_id", "transmission_id"],
        set_={"payload_hash": stmt.excluded.payload_hash, "expires_at": stmt.excluded.expires_at,
              "job_id": None, "body": None, "status_code": None, "created_at": text("now()")},
        where=Receipt.expires_at <= text("now()"),
    )
    return session.execute(stmt.returning(Receipt.transmission_id)).scalar_one_or_none() is not None


def attach_job(session: Session, tenant_id: str, client_id: str, transmission_id: str, job_id) -> None:
    session.execute(text("UPDATE receipts SET job_id = :j WHERE tenant_id = :t AND client_id = :c "
                         "AND transmission_id = :x"), {"j": str(job_id), "t": tenant_id, "c": client_id,
                                                       "x": transmission_id})


def store_answer(session: Session, tenant_id: str, client_id: str, transmission_id: str, status_code: int,
                 body: bytes) -> None:
    """Write the answer once; a redelivered job that rebuilds it does not change what was sent."""
    session.execute(text("UPDATE receipts SET status_code = :s, body = :b WHERE tenant_id = :t AND client_id = :c "
                         "AND transmission_id = :x AND body IS NULL"),
                    {"s": status_code, "b": body, "t": tenant_id, "c": client_id, "x": transmission_id})


_CLAIM_WITH_JOB = """
WITH claimed AS (
    INSERT INTO receipts AS r (tenant_id, client_id, transmission_id, payload_hash, expires_at, job_id)
    VALUES (:t, :c, :x, :h, now() + make_interval(days => :days), CAST(:job AS uuid))
    ON CONFLICT (tenant_id, client_id, transmission_id) DO UPDATE
       SET payload_hash = EXCLUDED.payload_hash, expires_at = EXCLUDED.expires_at, job_id = EXCLUDED.job_id,
           body = NULL, status_code = NULL, created_at = now()
     WHERE r.expires_at <= now()
    RETURNING 1
), job AS (
    INSERT INTO jobs (id, tenant_id, kind, queue, params, idempotency_key, payload_hash, blob_sha256, payload,
                      payload_text, created_by, max_attempts, progress_total, enqueued_at)
    SELECT CAST(:job AS uuid), :t, :kind, :queue,
           CAST(:params AS jsonb) || CASE WHEN CAST(:cursor_ns AS text) IS NULL THEN '{}'::jsonb ELSE
               jsonb_build_object('client_since', (SELECT pulled_version FROM client_cursors
                                                    WHERE tenant_id = :t AND namespace = :cursor_ns AND client_id = :c))
           END,
           :key, :h, :blob, CAST(:payload AS bytea), CAST(:payload_text AS text), :actor, :max_attempts,
           :total, now()
     WHERE EXISTS (SELECT 1 FROM claimed)
    ON CONFLICT (tenant_id, kind, idempotency_key) DO NOTHING
    RETURNING id
)
SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, (SELECT id FROM job) AS job_id,
       (SELECT payload_hash FROM receipts WHERE tenant_id = :t AND client_id = :c AND transmission_id = :x) AS held
"""


def claim_with_job(session: Session, *, tenant_id: str, client_id: str, transmission_id: str, payload_hash: str,
                   retention_days: int, job_id, kind, idempotency_key: str, params: dict, created_by: str | None,
                   max_attempts: int, progress_total: int | None, payload: bytes | None = None,
                   blob_sha256: str | None = None, cursor_namespace: str | None = None):
    """Reserve the receipt for this payload and create its job, in one statement. `cursor_namespace`:
    put the client's pull cursor in that namespace into the job's params as `client_since`.
    Returns (job_id, held_hash): the new job's id when this call claimed the receipt (else None), and the
    payload hash the receipt holds when someone else claimed it first (None when not visible yet)."""
    import orjson
    payload, payload_text = split_payload(payload)
    row = session.execute(text(_CLAIM_WITH_JOB), {
        "t": tenant_id, "c": client_id, "x": transmission_id, "h": payload_hash, "days": retention_days,
        "job": str(job_id), "kind": kind.name, "queue": kind.queue, "params": orjson.dumps(params).decode(),
        "cursor_ns": cursor_namespace, "key": idempotency_key, "blob": blob_sha256,
        "payload": payload, "payload_text": payload_text,
        "actor": created_by, "max_attempts": max_attempts, "total": progress_total}).one()
    if row.claimed and row.job_id is None:
        # The receipt had expired and the same payload's job still exists: point the receipt at it.
        existing = session.execute(text("""
            UPDATE receipts SET job_id = (SELECT id FROM jobs WHERE tenant_id = :t AND kind = :kind
                                                               AND idempotency_key = :key)
             WHERE tenant_id = :t AND client_id = :c AND transmission_id = :x RETURNING job_id
        """), {"t": tenant_id, "kind": kind.name, "key": idempotency_key, "c": client_id,
               "x": transmission_id}).scalar()
        return None, payload_hash if existing is not None else None
    return (row.job_id if row.claimed else None), row.held


def answer_or_status(session: Session, tenant_id: str, client_id: str, transmission_id: str):
    """One look at a push: (status_code, body, job_id, job_status, job_error) — the stored answer when
    there is one, else the state of the receipt's job (all None when there is no receipt)."""
    return session.execute(text("""
        SELECT r.status_code, r.body, r.job_id, j.status AS job_status, j.error_code AS job_error
          FROM receipts r LEFT JOIN jobs j ON j.id = r.job_id
         WHERE r.tenant_id = :t AND r.client_id = :c AND r.transmission_id = :x AND r.expires_at > now()
    """), {"t": tenant_id, "c": client_id, "x": transmission_id}).first()
