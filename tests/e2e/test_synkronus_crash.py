"""A Synkronus push whose worker is killed mid-job completes once: nothing lost, nothing applied twice.
(Its own module: no other worker may listen while it runs.)"""
import os
import signal
import uuid

from sqlalchemy import text

from models.db import session_scope
from models.tables import Job
from tests.conftest import WorkerProcess, wait_for
from tests.factories import bearer, make_user
from workers.sweeper import sweep_once

N = 12_000


def _job(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        job = s.get(Job, job_id)
        return job.status, job.progress_done, job.counts, job.attempts


def test_killed_worker_mid_push(settings, engine, real_sessions, celery_app, redis_client):
    from web.app import create_app
    redis_client.flushdb()
    env = {"JOB_LEASE_SECONDS": "3", "CHUNK_SIZE": "200"}
    short = settings.replace(job_lease_seconds=3, sync_wait_seconds=0, max_records_per_push=N)
    app = create_app(short, session_factory=real_sessions, celery_app=celery_app, redis_client=redis_client)
    with session_scope(real_sessions) as s:
        user = make_user(s, tenant=f"crash-{uuid.uuid4().hex[:6]}")
    records = [{"observation_id": f"o{i}", "form_type": "f", "form_version": "1", "data": {"i": i, "pad": "x" * 300},
                "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "deleted": False}
               for i in range(N)]
    r = app.test_client().post("/sync/push", json={"transmission_id": "t-crash", "client_id": "c", "records": records},
                               headers=bearer(app, user))
    assert r.status_code == 202
    job_id = uuid.UUID(r.get_json()["job_id"])
    victim = WorkerProcess(short, queues=("ingest",), concurrency=1, extra_env=env).start()
    try:
        wait_for(lambda: _job(real_sessions, job_id)[1] >= 1000, 60, interval=0.02, message=victim.tail())
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
    finally:
        victim.stop()
    status, done_at_kill, _, _ = _job(real_sessions, job_id)
    assert status == "RUNNING" and done_at_kill < N, "the kill must land mid-job"
    rescuer = WorkerProcess(short, queues=("ingest", "index"), concurrency=1, extra_env=env).start()
    try:
        def finished():
            sweep_once(celery_app.runtime, celery_app)
            return _job(real_sessions, job_id)[0] == "COMPLETED"
        wait_for(finished, 120, interval=1, message=rescuer.tail())
    finally:
        rescuer.stop()
    status, done, counts, attempts = _job(real_sessions, job_id)
    assert counts["accepted"] == N and counts["duplicate"] == 0 and counts["rejected"] == 0
    assert attempts >= 2
    with session_scope(real_sessions) as s:
        rows = s.execute(text("SELECT count(*), count(DISTINCT record_key) FROM records WHERE tenant_id = :t"),
                         {"t": user.tenant_id}).one()
        changes = s.execute(text("SELECT count(*) FROM record_changes WHERE tenant_id = :t"), {"t": user.tenant_id}).scalar()
    assert tuple(rows) == (N, N)
    assert changes == N, "each record changed exactly once"
    replay = app.test_client().post("/sync/push", json={"transmission_id": "t-crash", "client_id": "c",
                                                        "records": records}, headers=bearer(app, user))
    assert replay.status_code == 200 and replay.get_json()["success_count"] == N
