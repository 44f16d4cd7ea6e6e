"""A worker killed with SIGKILL in the middle of a DIGIT sync file: the job is reclaimed, resumes from
its checkpoint and finishes once, with no entity applied twice. (Its own module: no other worker may be
listening while it runs.)"""
import io
import os
import signal
import uuid

from sqlalchemy import func, select

from models.db import session_scope
from models.records import Record, RecordChange
from models.tables import Job
from tests.conftest import WorkerProcess, wait_for
from tests.factories import bearer, make_user, token_for
from tests.web.digit.support import envelope, household, ndjson
from workers.sweeper import sweep_once


def _job(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        return s.get(Job, job_id)


def test_killed_worker_resumes_and_applies_every_entity_once(settings, engine, real_sessions, celery_app, live_app):
    short = settings.replace(job_lease_seconds=3)
    env = {"JOB_LEASE_SECONDS": "3", "CHUNK_SIZE": "200"}
    client = live_app.test_client()
    with session_scope(real_sessions) as s:
        user = make_user(s)
    campaign = f"CRASH-{uuid.uuid4().hex[:8]}"
    total = 30_000
    data = ndjson([("household", household(i)) for i in range(total)])
    victim = WorkerProcess(short, queues=("ingest",), concurrency=1, extra_env=env).start()
    try:
        resp = client.post("/filestore/v1/files", headers=bearer(live_app, user), content_type="multipart/form-data",
                           data={"tenantId": "default", "file": (io.BytesIO(data), "crash.ndjson")})
        file_id = resp.get_json()["files"][0]["fileStoreId"]
        resp = client.post("/sync/file/v1/_create", json=envelope(
            {"campaignId": campaign, "tenantId": "default", "file": file_id}, token_for(live_app, user)))
        job_id = uuid.UUID(resp.get_json()["sync"]["syncId"])
        wait_for(lambda: 0 < _job(real_sessions, job_id).checkpoint < total // 2, 60, interval=0.02,
                 message=victim.tail())
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
    finally:
        victim.stop()
    killed = _job(real_sessions, job_id)
    assert killed.status == "RUNNING" and killed.attempts == 1 and 0 < killed.checkpoint < total
    rescuer = WorkerProcess(short, queues=("ingest",), concurrency=1, extra_env=env).start()
    try:
        def swept_and_done():
            sweep_once(celery_app.runtime, celery_app)
            return _job(real_sessions, job_id).status in ("COMPLETED", "FAILED")
        wait_for(swept_and_done, 120, interval=1, message=rescuer.tail())
    finally:
        rescuer.stop()
    job = _job(real_sessions, job_id)
    assert job.status == "COMPLETED", (job.error_code, job.error_detail)
    assert job.attempts == 2
    assert job.counts["accepted"] == total and job.counts["rejected"] == 0
    assert job.progress_done == job.progress_total == total
    with session_scope(real_sessions) as s:
        records = s.execute(select(func.count()).select_from(Record).where(
            Record.namespace == "digit", Record.record_key.like(f"{campaign}:%"))).scalar()
        changes = s.execute(select(func.count()).select_from(RecordChange).where(
            RecordChange.job_id == job_id)).scalar()
    assert records == total
    assert changes == total  # each entity applied exactly once across both deliveries
