"""A worker killed with SIGKILL mid-job: the job is reclaimed after its lease and completed once.
(Its own module: no other worker may be listening while it runs.)"""
import os
import signal

from models.db import session_scope
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import WorkerProcess, wait_for
from workers.api import submit_job
from workers.sweeper import sweep_once
from models.kinds import PROBES


def _status(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        job = s.get(Job, job_id)
        return job.status, job.attempts, job.counts, job.progress_done, job.result


def test_job_of_a_killed_worker_is_reclaimed_and_completed_once(settings, engine, real_sessions, celery_app):
    short = settings.replace(job_lease_seconds=3)
    victim = WorkerProcess(short, queues=("maintenance",), concurrency=1,
                           extra_env={"JOB_LEASE_SECONDS": "3"}).start()
    try:
        with session_scope(real_sessions) as s:
            ensure_tenant(s, "default")
            job, _ = submit_job(s, celery_app, tenant_id="default", kind=PROBES["maintenance"],
                                params={"steps": 6, "sleep": 0.5})
        wait_for(lambda: _status(real_sessions, job.id)[3] >= 2, 30, message=victim.tail())
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
    finally:
        victim.stop()
    status, attempts, _, done_at_kill, _ = _status(real_sessions, job.id)
    assert status == "RUNNING" and attempts == 1
    rescuer = WorkerProcess(short, queues=("maintenance",), concurrency=1,
                            extra_env={"JOB_LEASE_SECONDS": "3"}).start()
    try:
        def swept_and_done():
            sweep_once(celery_app.runtime, celery_app)
            return _status(real_sessions, job.id)[0] == "COMPLETED"
        wait_for(swept_and_done, 60, interval=1, message=rescuer.tail())
    finally:
        rescuer.stop()
    status, attempts, counts, done, result = _status(real_sessions, job.id)
    assert status == "COMPLETED" and done == 6
    assert result["resumed_from"] >= 2  # resumed from its checkpoint, not from zero
    assert counts["steps"] == 6
