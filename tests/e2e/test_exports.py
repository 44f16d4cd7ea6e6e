"""Analyst exports end to end (real worker process, PostgreSQL and Redis): POST /exports to signed
downloads read with polars and DuckDB, the analyst role's reach, tenant isolation, bad input, and export
schedules fired by the scheduler's hook."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import uuid
import zipfile
from urllib.parse import urlsplit

import duckdb
import polars as pl
import pytest

from models.db import session_scope
from models.engine import Incoming, apply_chunk
from models.kinds import PROBES
from models.tables import ExportSchedule, Job
from tests.conftest import wait_for
from tests.factories import bearer, make_user
from workers.api import submit_job
from workers.exports import schedule_exports

NS = "synkronus"


@pytest.fixture
def tenant(real_sessions):
    name = f"exp-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        admin = make_user(s, role="admin", tenant=name)
        analyst = make_user(s, role="analyst", tenant=name)
        writer = make_user(s, role="read-write", tenant=name)
    return {"name": name, "admin": admin, "analyst": analyst, "writer": writer}


def put(real_sessions, tenant_id, records, namespace=NS):
    with session_scope(real_sessions) as s:
        apply_chunk(s, tenant_id=tenant_id, namespace=namespace, records=[
            Incoming(position=i, key=r["key"], record_type=r.get("type", "survey"), data=r.get("data"),
                     deleted=r.get("deleted", False)) for i, r in enumerate(records)])


def finished(client, headers, export_id, timeout=60):
    def done():
        body = client.get(f"/exports/{export_id}", headers=headers).get_json()
        return body if body["status"] in ("COMPLETED", "FAILED") else None
    return wait_for(done, timeout, interval=0.2, message=f"export {export_id}")


def fetch(client, url):
    parts = urlsplit(url)
    return client.get(parts.path + "?" + parts.query)


def read_both(data: bytes, tmp_path, name="f.parquet"):
    path = tmp_path / name
    path.write_bytes(data)
    frame = pl.read_parquet(path)
    con = duckdb.connect()
    rows = con.execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    assert len(rows) == frame.height and [d[0] for d in con.description] == frame.columns
    return frame


def test_an_analyst_exports_and_downloads_with_signed_urls(live_worker, live_app, tenant, real_sessions, tmp_path):
    client = live_app.test_client()
    put(real_sessions, tenant["name"], [{"key": f"o{i}", "type": "b" if i % 2 else "a", "data": {"n": i, "s": "x"}}
                                        for i in range(40)])
    put(real_sessions, tenant["name"], [{"key": "o3", "deleted": True, "type": "b", "data": {"n": 3}}])
    h = bearer(live_app, tenant["analyst"])
    r = client.post("/exports", json={"namespace": NS}, headers=h)
    assert r.status_code == 202, r.data
    export_id = r.get_json()["id"]
    assert r.headers["Location"] == f"/exports/{export_id}"
    body = finished(client, h, export_id)
    assert body["status"] == "COMPLETED" and body["rows"] == 40
    assert [f["path"] for f in body["files"]] == ["a.parquet", "b.parquet"]
    for f in body["files"]:
        got = fetch(client, f["url"])
        assert got.status_code == 200
        assert hashlib.sha256(got.data).hexdigest() == f["sha256"] and len(got.data) == f["bytes"]
        frame = read_both(got.data, tmp_path, f["path"])
        assert frame.height == f["rows"] == 20
    frame = read_both(fetch(client, body["files"][1]["url"]).data, tmp_path)
    assert frame.filter(pl.col("_key") == "o3")["_deleted"].to_list() == [True]
    manifest = fetch(client, body["manifest_url"]).get_json()
    assert manifest["job_id"] == export_id and manifest["rows"] == 40
    assert manifest["versions"]["after"] == 0 and manifest["versions"]["through"] >= 41
    assert all(f["schema_sha256"] and f["schema"][0]["name"] == "_key" for f in manifest["files"])
    archive = zipfile.ZipFile(io.BytesIO(fetch(client, body["zip_url"]).data))
    assert sorted(archive.namelist()) == ["a.parquet", "b.parquet", "manifest.json"]
    # a signature names one file of one export
    token = body["files"][0]["url"].split("sig=")[1]
    assert client.get(f"/exports/{export_id}/files/b.parquet?sig={token}").status_code == 404
    assert client.get(f"/exports/{export_id}/files/a.parquet?sig=forged").status_code == 404
    assert client.get(f"/exports/{uuid.uuid4()}/files/a.parquet?sig={token}").status_code == 404


def test_another_tenants_export_is_not_found(live_worker, live_app, tenant, real_sessions):
    client = live_app.test_client()
    put(real_sessions, tenant["name"], [{"key": "mine", "data": {"v": 1}}])
    with session_scope(real_sessions) as s:
        stranger = make_user(s, role="admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    r = client.post("/exports", json={"namespace": NS}, headers=bearer(live_app, tenant["admin"]))
    export_id = r.get_json()["id"]
    finished(client, bearer(live_app, tenant["admin"]), export_id)
    hs = bearer(live_app, stranger)
    assert client.get(f"/exports/{export_id}", headers=hs).status_code == 404
    assert client.get(f"/exports/{export_id}/zip", headers=hs).status_code == 404
    mine = client.post("/exports", json={"namespace": NS}, headers=hs).get_json()
    assert finished(client, hs, mine["id"])["files"] == []  # the stranger's export holds none of our rows


def test_the_analyst_reads_exports_and_nothing_else(live_app, tenant):
    client = live_app.test_client()
    h = bearer(live_app, tenant["analyst"])
    assert client.post("/sync/pull", json={"client_id": "c"}, headers=h).status_code == 403
    assert client.post("/sync/push", json={"transmission_id": "t", "client_id": "c", "records": []},
                       headers=h).status_code == 403
    assert client.get(f"/jobs/{uuid.uuid4()}", headers=h).status_code == 403
    assert client.post("/export-schedules", json={}, headers=h).status_code == 403
    assert client.get("/exports", headers=h).status_code == 200
    assert client.get("/export-schedules", headers=h).status_code == 200
    writer = bearer(live_app, tenant["writer"])
    assert client.post("/exports", json={"namespace": NS}, headers=writer).status_code == 403


@pytest.mark.parametrize("body, says", [
    ({"namespace": "nope"}, "namespace must be one of"),
    ({"namespace": NS, "since_version": "0"}, "since_version"),
    ({"namespace": NS, "partition_by": ["hour"]}, "partition_by"),
    ({"namespace": NS, "record_types": "survey"}, "record_types"),
    ({"namespace": NS, "until": 1, "since_version": 5}, "until"),
])
def test_a_bad_export_spec_is_a_clear_400(live_app, tenant, body, says):
    r = live_app.test_client().post("/exports", json=body, headers=bearer(live_app, tenant["admin"]))
    assert r.status_code == 400 and says in r.get_json()["message"]


def _schedule_body(target, **kw):
    body = {"name": f"s-{uuid.uuid4().hex[:6]}", "cron": "0 2 * * *", "spec": {"namespace": NS},
            "target": target, "retention": 2}
    body.update(kw)
    return body


def test_bad_schedules_are_clear_400s(live_app, tenant, settings, tmp_path, real_sessions):
    root = settings.export_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "out-link").unlink(missing_ok=True)
    (root / "out-link").symlink_to(tmp_path)
    client = live_app.test_client()
    h = bearer(live_app, tenant["admin"])
    cases = [(_schedule_body("daily", cron="every day"), "cron"),
             (_schedule_body("daily", cron="99 * * * *"), "cron"),
             (_schedule_body("../escape"), ".."),
             (_schedule_body("/etc/fieldsync"), "inside"),
             (_schedule_body("out-link/x"), "inside"),
             (_schedule_body("daily", spec={"namespace": "nope"}), "namespace"),
             (_schedule_body("daily", retention=0), "retention")]
    for body, says in cases:
        r = client.post("/export-schedules", json=body, headers=h)
        assert r.status_code == 400 and says in r.get_json()["message"], (body, r.data)
    ok = client.post("/export-schedules", json=_schedule_body("daily", name="dup"), headers=h)
    assert ok.status_code == 201
    assert client.post("/export-schedules", json=_schedule_body("daily", name="dup"), headers=h).status_code == 409
    sid = ok.get_json()["id"]
    assert client.post(f"/export-schedules/{sid}/pause", headers=h).get_json()["paused"] is True
    with session_scope(real_sessions) as s:
        stranger = make_user(s, role="admin", tenant=f"other-{uuid.uuid4().hex[:6]}")
    assert client.get(f"/export-schedules/{sid}", headers=bearer(live_app, stranger)).status_code == 404
    assert client.delete(f"/export-schedules/{sid}", headers=bearer(live_app, stranger)).status_code == 404
    assert client.delete(f"/export-schedules/{sid}", headers=h).status_code == 204


def _make_schedule(real_sessions, tenant_id, target, *, next_run_at, spec=None, retention=2):
    from models import exports as store
    with session_scope(real_sessions) as s:
        # a yearly cron: each test sets next_run_at itself, and no run comes due by the clock mid-test
        made = store.create_schedule(s, tenant_id=tenant_id, name=f"s-{uuid.uuid4().hex[:6]}", cron="0 0 1 1 *",
                                     spec=spec or {"namespace": NS, "record_types": [], "since_version": 0,
                                                   "until": None, "partition_by": ["record_type"]},
                                     target=target, retention=retention, next_run_at=next_run_at, created_by="t")
        return made.id


def _schedule(real_sessions, schedule_id):
    with session_scope(real_sessions) as s:
        found = s.get(ExportSchedule, schedule_id)
        s.expunge(found)
        return found


def _job(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        found = s.get(Job, job_id)
        s.expunge(found)
        return found


def test_a_schedule_fires_lands_atomically_runs_incrementally_and_keeps_retention(
        live_worker, celery_app, tenant, real_sessions, settings):
    put(real_sessions, tenant["name"], [{"key": f"k{i}", "data": {"i": i}} for i in range(10)])
    target = f"sched-{uuid.uuid4().hex[:6]}"
    now = dt.datetime.now(dt.timezone.utc)
    sid = _make_schedule(real_sessions, tenant["name"], target, next_run_at=now - dt.timedelta(seconds=1))
    runtime = celery_app.runtime
    directory = settings.export_root / target
    runs = []
    for round_ in range(3):
        if round_:
            put(real_sessions, tenant["name"], [{"key": "k1", "data": {"i": 100 + round_}},
                                                {"key": f"new{round_}", "data": {"i": round_}}])
            with session_scope(real_sessions) as s:
                s.get(ExportSchedule, sid).next_run_at = now + dt.timedelta(seconds=round_)
        assert schedule_exports(runtime, celery_app, now=now + dt.timedelta(seconds=round_)) == 1
        job_id = _schedule(real_sessions, sid).last_job_id
        wait_for(lambda: _job(real_sessions, job_id).status == "COMPLETED", 60, message=live_worker.tail())
        runs.append(_job(real_sessions, job_id).result["manifest"])
    first, second, third = runs
    assert first["rows"] == 10 and second["rows"] == 2 and third["rows"] == 2
    assert second["versions"]["after"] == first["versions"]["through"]
    assert third["versions"]["after"] == second["versions"]["through"]
    landed = sorted(p.name for p in directory.iterdir())
    assert len(landed) == 2, landed  # retention 2: the oldest run is gone, no temp directory is left
    newest = directory / landed[-1]
    assert json.loads((newest / "manifest.json").read_text())["job_id"] == third["job_id"]
    frame = pl.read_parquet(newest / "survey.parquet")
    assert sorted(frame["_key"].to_list()) == ["k1", "new2"]
    con = duckdb.connect()
    assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(newest / "survey.parquet")]).fetchone()[0] == 2


def test_a_schedule_whose_run_is_in_flight_does_not_start_another(celery_app, tenant, real_sessions):
    now = dt.datetime.now(dt.timezone.utc)
    sid = _make_schedule(real_sessions, tenant["name"], "inflight", next_run_at=now - dt.timedelta(minutes=1))
    with session_scope(real_sessions) as s:
        running, _ = submit_job(s, celery_app, tenant_id=tenant["name"], kind=PROBES["exports"],
                                params={"steps": 1})
        s.flush()
        s.execute(Job.__table__.update().where(Job.id == running.id).values(status="RUNNING"))
        s.get(ExportSchedule, sid).last_job_id = running.id
    assert schedule_exports(celery_app.runtime, celery_app, now=now) == 0
    after = _schedule(real_sessions, sid)
    assert after.last_job_id == running.id and after.next_run_at > now  # skipped, and the next run is later
    with session_scope(real_sessions) as s:
        s.execute(Job.__table__.update().where(Job.id == running.id).values(status="COMPLETED"))
        s.get(ExportSchedule, sid).paused = True


def test_a_paused_schedule_does_not_fire(celery_app, tenant, real_sessions):
    now = dt.datetime.now(dt.timezone.utc)
    sid = _make_schedule(real_sessions, tenant["name"], "paused", next_run_at=now - dt.timedelta(minutes=1))
    with session_scope(real_sessions) as s:
        s.get(ExportSchedule, sid).paused = True
    assert schedule_exports(celery_app.runtime, celery_app, now=now) == 0
    assert _schedule(real_sessions, sid).last_job_id is None


def test_a_run_missed_while_the_scheduler_was_down_runs_once_on_start(live_worker, tenant, real_sessions, settings):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT, worker_env
    put(real_sessions, tenant["name"], [{"key": "m", "data": {"v": 1}}])
    target = f"missed-{uuid.uuid4().hex[:6]}"
    sid = _make_schedule(real_sessions, tenant["name"], target,
                         next_run_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    env = worker_env(settings)
    env["SWEEP_INTERVAL_SECONDS"] = "0.5"
    log = open(settings.data_dir / f"scheduler-{uuid.uuid4().hex[:6]}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "web.cli", "scheduler"], env=env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        job_id = wait_for(lambda: _schedule(real_sessions, sid).last_job_id, 60, message="the missed run")
        wait_for(lambda: _job(real_sessions, job_id).status == "COMPLETED", 60, message=live_worker.tail())
        import time
        time.sleep(2)  # a few more scheduler periods: the missed runs do not pile up
        with session_scope(real_sessions) as s:
            runs = s.query(Job).filter(Job.params["schedule_id"].astext == str(sid)).count()
        assert runs == 1
        after = _schedule(real_sessions, sid)
        assert after.next_run_at > dt.datetime.now(dt.timezone.utc)
        landed = [p for p in (settings.export_root / target).iterdir()]
        assert len(landed) == 1 and (landed[0] / "manifest.json").is_file()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()
