"""The index step's coalescing: one waiting index job per (tenant, namespace) whatever the number of
requests; a started job gives its place up so the next request queues the next run."""
from __future__ import annotations

import uuid

from sqlalchemy import text

from models.kinds import INDEX
from models.users import ensure_tenant
from workers.index import request_index


def _index_jobs(session, tenant):
    return session.execute(text("SELECT id, idempotency_key FROM jobs WHERE tenant_id = :t AND kind = :k "
                                "ORDER BY created_at, id"), {"t": tenant, "k": INDEX.name}).all()


def test_requests_join_the_waiting_run_and_a_started_run_lets_the_next_one_queue(db_session, broker):
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    ensure_tenant(db_session, tenant)
    for _ in range(5):
        request_index(db_session, broker, tenant_id=tenant, namespace="synkronus")
    request_index(db_session, broker, tenant_id=tenant, namespace="msupply")
    db_session.commit()
    jobs = _index_jobs(db_session, tenant)
    assert sorted(key for _, key in jobs) == ["msupply:waiting", "synkronus:waiting"]
    assert len(broker.sent) == 2  # one message per queued run, none for the joined requests
    # the run starts: it releases the waiting key exactly as run_index does
    waiting = next(job_id for job_id, key in jobs if key == "synkronus:waiting")
    db_session.execute(text("UPDATE jobs SET idempotency_key = 'synkronus:' || CAST(id AS text) WHERE id = :id"),
                       {"id": waiting})
    request_index(db_session, broker, tenant_id=tenant, namespace="synkronus")
    request_index(db_session, broker, tenant_id=tenant, namespace="synkronus")
    db_session.commit()
    keys = [key for _, key in _index_jobs(db_session, tenant)]
    assert keys.count("synkronus:waiting") == 1 and f"synkronus:{waiting}" in keys and len(keys) == 3
    assert len(broker.sent) == 3
