"""The ops side end to end with real worker processes: /metrics counters move by exactly the records
pushed (worker children and the web process add up), devices are recorded by the push and pull
paths, a running job cancelled from the console stops at a chunk boundary keeping what it committed,
a retried FAILED job completes, and heartbeats show a killed worker dead within the timeout."""
from __future__ import annotations

import signal
import time
import uuid

import pytest
from sqlalchemy import text
from prometheus_client.parser import text_string_to_metric_families

from models import jobs
from models.db import session_scope
from models.devices import Device
from models.kinds import PROBES
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import WorkerProcess, wait_for
from tests.factories import bearer, make_user
from tests.web.ops.helpers import csrf_token, sign_in

TOKEN = "metrics-token"


@pytest.fixture
def ops_app(settings, real_sessions, celery_app, redis_client):
    from web.app import create_app
    application = create_app(settings.replace(metrics_token=TOKEN, ops_worker_timeout_seconds=3),
                             session_factory=real_sessions, celery_app=celery_app, redis_client=redis_client)
    application.testing = True
    return application


def _scrape(client) -> dict:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.get_data(as_text=True)) for s in family.samples}


def _records(samples, outcome):
    return samples.get(("fieldsync_records_total", (("namespace", "synkronus"), ("outcome", outcome))), 0)


def _obs(i):
    return {"observation_id": f"ops-{i}", "form_type": "survey", "form_version": "1", "data": {"n": i},
            "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-15T10:30:00Z", "deleted": False}


def test_metrics_counters_move_by_exactly_the_records_pushed(live_worker, ops_app, real_sessions):
    client = ops_app.test_client()
    tenant = f"met-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        user = make_user(s, role="read-write", tenant=tenant)
    h = {**bearer(ops_app, user), "X-App-Version": "formulus/2.4.1"}
    before = _scrape(client)
    good, bad = 1234, 7
    records = [_obs(i) for i in range(good)] + [42] * bad
    r = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "tablet-7",
                                        "records": records}, headers=h)
    assert r.status_code == 200, r.data
    middle = _scrape(client)
    assert _records(middle, "accepted") - _records(before, "accepted") == good
    assert _records(middle, "rejected") - _records(before, "rejected") == bad
    # the same records again: all duplicates
    r = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "tablet-7",
                                        "records": records[:good]}, headers=h)
    assert r.status_code == 200, r.data
    after = _scrape(client)
    assert _records(after, "duplicate") - _records(middle, "duplicate") == good
    assert _records(after, "accepted") == _records(middle, "accepted")
    finished = ("fieldsync_jobs_finished_total", (("kind", "synkronus.push"), ("status", "COMPLETED")))
    assert after.get(finished, 0) - before.get(finished, 0) == 2
    push_route = ("fieldsync_http_requests_total", (("method", "POST"), ("route", "/sync/push"), ("status", "200")))
    assert after.get(push_route, 0) - before.get(push_route, 0) == 2

    r = client.post("/sync/pull", json={"client_id": "tablet-7", "since": {"version": 0}}, headers=h)
    assert r.status_code == 200
    with session_scope(real_sessions) as s:
        device = s.get(Device, (tenant, "synkronus", "tablet-7"))
        assert (device.pushes, device.pulls, device.records_pushed) == (2, 1, good * 2 + bad)
        page = r.get_json()
        assert page["has_more"] is True  # a first page of 50: the device has pulled up to its cutoff
        assert device.app_version == "formulus/2.4.1" and device.last_pulled_version == page["change_cutoff"]
        counter = s.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t"), {"t": tenant}).scalar_one()
    labels = (("dialect", "synkronus"), ("tenant", tenant))
    lag = _scrape(client)
    assert lag[("fieldsync_pull_lag_max", labels)] == counter - page["change_cutoff"] > 0
    assert lag[("fieldsync_pulling_devices", labels)] == 1
    # pulled to the end: no lag left
    while page["has_more"]:
        page = client.post("/sync/pull", json={"client_id": "tablet-7", "since": {"version": page["change_cutoff"]}},
                           headers=h).get_json()
    assert _scrape(client)[("fieldsync_pull_lag_max", labels)] == 0


def _probe(real_sessions, celery_app, *, steps, sleep, tenant="ops-e2e"):
    from workers.api import submit_job
    with session_scope(real_sessions) as s:
        ensure_tenant(s, tenant)
        job, _ = submit_job(s, celery_app, tenant_id=tenant, kind=PROBES["ingest"],
                            params={"steps": steps, "sleep": sleep})
        return job.id


def _job(real_sessions, job_id) -> Job:
    with session_scope(real_sessions) as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_cancel_stops_a_running_job_at_a_chunk_boundary(live_worker, ops_app, real_sessions, celery_app):
    with session_scope(real_sessions) as s:
        admin = make_user(s, role="admin", is_system=True)
    client = ops_app.test_client()
    sign_in(client, admin)
    job_id = _probe(real_sessions, celery_app, steps=400, sleep=0.05)
    wait_for(lambda: _job(real_sessions, job_id).progress_done >= 5, 30, message="the probe to progress")
    r = client.post(f"/ops/jobs/{job_id}/cancel", data={"csrf_token": csrf_token(client, "/ops/")},
                    headers={"Accept": "application/json"})
    assert r.get_json()["status"] == "CANCELLED" and r.get_json()["changed"] is True
    at_cancel = _job(real_sessions, job_id).progress_done
    time.sleep(1.0)
    job = _job(real_sessions, job_id)
    assert job.status == "CANCELLED" and job.finished_at is not None
    assert at_cancel <= job.progress_done <= at_cancel + 1 < 400  # it kept what it committed, then stopped
    assert job.checkpoint == job.progress_done
    time.sleep(0.5)
    assert _job(real_sessions, job_id).progress_done == job.progress_done


def test_retry_of_a_failed_job_completes(live_worker, ops_app, real_sessions, celery_app):
    with session_scope(real_sessions) as s:
        admin = make_user(s, role="admin", is_system=True)
        ensure_tenant(s, "ops-e2e")
        job, _ = jobs.create_job(s, tenant_id="ops-e2e", kind=PROBES["ingest"], params={"steps": 3}, max_attempts=1)
        s.flush()
        jobs.claim(s, job.id, 60)  # a delivery that crashed on its only attempt
        jobs.progress(s, job.id, done=1, total=3, checkpoint=1)
        jobs.fail(s, job.id, "internal_error", "RuntimeError while running the job; see the worker log")
        job_id = job.id
    client = ops_app.test_client()
    sign_in(client, admin)
    form = {"csrf_token": csrf_token(client, "/ops/"), "attempts": "1"}
    assert client.post(f"/ops/jobs/{job_id}/retry", data=form).status_code == 303
    assert client.post(f"/ops/jobs/{job_id}/retry", data=form).status_code == 303  # a second click: no-op
    done = wait_for(lambda: (j := _job(real_sessions, job_id)).status == "COMPLETED" and j, 30,
                    message="the retried job to complete")
    assert done.attempts == 2 and done.error_code is None
    assert done.result == {"steps": 3, "resumed_from": 1}  # resumed from its checkpoint


def test_heartbeats_show_a_killed_worker_dead(settings, engine, ops_app, real_sessions):
    with session_scope(real_sessions) as s:
        admin = make_user(s, role="admin", is_system=True)
    client = ops_app.test_client()
    sign_in(client, admin)
    worker = WorkerProcess(settings, queues=("exports",), concurrency=1,
                           extra_env={"OPS_HEARTBEAT_SECONDS": "0.5"}).start()
    try:
        def mine():
            for w in client.get("/ops/api/overview").get_json()["workers"]:
                if w["hostname"].startswith(worker.hostname_prefix):
                    return w
            return None
        alive = wait_for(lambda: (w := mine()) and w["alive"] and w, 15, message="the worker's heartbeat")
        assert alive["queues"] == ["exports"] and alive["processes"] == 1
        worker.stop(signal.SIGKILL)
        started = time.monotonic()
        wait_for(lambda: (w := mine()) and not w["alive"], 10, message="the killed worker to show dead")
        assert time.monotonic() - started <= 3 + 1.5
    finally:
        worker.stop()
