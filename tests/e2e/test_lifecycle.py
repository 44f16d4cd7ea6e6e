"""The job lifecycle through a real Celery worker process, real PostgreSQL and real Redis."""
import time

from models.db import session_scope
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import wait_for
from workers.api import submit_job
from workers.sweeper import sweep_once
from models.kinds import PROBES


def _status(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        job = s.get(Job, job_id)
        return job.status, job.attempts, job.counts, job.progress_done, job.result


def test_enqueued_after_commit_runs_to_completed(live_worker, real_sessions, celery_app):
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "default")
        job, _ = submit_job(s, celery_app, tenant_id="default", kind=PROBES["ingest"], params={"steps": 3})
    wait_for(lambda: _status(real_sessions, job.id)[0] == "COMPLETED", 30, message=live_worker.tail())
    status, attempts, counts, done, result = _status(real_sessions, job.id)
    assert attempts == 1 and counts["steps"] == 3 and done == 3 and result["steps"] == 3


def test_every_queue_is_served(live_worker, real_sessions, celery_app):
    ids = []
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "default")
        for queue in ("ingest", "index", "exports", "maintenance"):
            job, _ = submit_job(s, celery_app, tenant_id="default", kind=PROBES[queue], params={"steps": 1})
            ids.append(job.id)
    for job_id in ids:
        wait_for(lambda: _status(real_sessions, job_id)[0] == "COMPLETED", 30, message=live_worker.tail())


class _NoBroker:
    def send_task(self, *a, **k):
        raise ConnectionError("message lost")


def test_lost_message_is_completed_after_the_sweeper_runs(live_worker, real_sessions, celery_app):
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "default")
        job, _ = submit_job(s, _NoBroker(), tenant_id="default", kind=PROBES["ingest"], params={"steps": 1})
    time.sleep(1.5)
    assert _status(real_sessions, job.id)[0] == "QUEUED"
    summary = sweep_once(celery_app.runtime, celery_app)
    assert summary["sent"] >= 1
    wait_for(lambda: _status(real_sessions, job.id)[0] == "COMPLETED", 30, message=live_worker.tail())
