"""Receipts: the exact answer to a push, kept under (tenant, client, transmission id) with the payload's
hash, so a replay gets the same bytes and a reused id with another payload is refused."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

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
