"""The console's exports page: schedules of the admin's tenant subtree with their last run, the latest
export jobs, and pause / resume as CSRF-protected forms."""
from __future__ import annotations

import datetime as dt
import uuid

from models import exports as store
from models import jobs
from models.kinds import EXPORT
from models.tables import ExportSchedule
from models.users import ensure_tenant
from tests.factories import make_user
from tests.web.ops.helpers import csrf_token, sign_in


def _schedule(session, tenant, name=None, *, paused=False):
    ensure_tenant(session, tenant)
    schedule = store.create_schedule(
        session, tenant_id=tenant, name=name or f"nightly-{uuid.uuid4().hex[:6]}", cron="0 2 * * *",
        spec={"namespace": "synkronus.observations"}, target="nightly", retention=3,
        next_run_at=dt.datetime(2030, 1, 1, 2, tzinfo=dt.timezone.utc), created_by="ops")
    schedule.paused = paused
    session.commit()
    return schedule


def _export_job(session, tenant, schedule=None, *, fail=False):
    job, _ = jobs.create_job(session, tenant_id=tenant, kind=EXPORT,
                             params={"spec": {"namespace": "synkronus.observations"}})
    session.flush()
    jobs.claim(session, job.id, 60)
    if fail:
        jobs.fail(session, job.id, "disk_full", "no space left for the run")
    if schedule is not None:
        schedule.last_job_id = job.id
    session.commit()
    return job


def test_the_page_lists_schedules_and_runs_of_the_tenant_subtree_only(client, db_session):
    mine = _schedule(db_session, "east", "east-nightly")
    below = _schedule(db_session, "east.district", "district-nightly", paused=True)
    other = _schedule(db_session, "west", "west-nightly")
    failed = _export_job(db_session, "east", mine, fail=True)
    _export_job(db_session, "west", other)
    admin = make_user(db_session, tenant="east", role="admin")
    sign_in(client, admin)

    page = client.get("/ops/exports")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "east-nightly" in html and "district-nightly" in html and "west-nightly" not in html
    assert 'href="/ops/exports"' in client.get("/ops/").get_data(as_text=True)

    data = client.get("/ops/api/exports").get_json()
    by_name = {s["name"]: s for s in data["schedules"]}
    assert set(by_name) == {"east-nightly", "district-nightly"}
    assert by_name["east-nightly"]["last_run"] == {"job_id": str(failed.id), "status": "FAILED",
                                                   "finished_at": by_name["east-nightly"]["last_run"]["finished_at"],
                                                   "error": "disk_full"}
    assert by_name["district-nightly"]["paused"] is True and by_name["district-nightly"]["last_run"] is None
    assert by_name["east-nightly"]["cron"] == "0 2 * * *" and by_name["east-nightly"]["next_run_at"].startswith("2030")
    assert [j["id"] for j in data["exports"]] == [str(failed.id)]
    assert str(below.id) in html


def test_pause_and_resume_need_the_csrf_token_and_stay_in_the_tenant(client, db_session):
    mine = _schedule(db_session, "north")
    other = _schedule(db_session, "south")
    admin = make_user(db_session, tenant="north", role="admin")
    sign_in(client, admin)
    token = csrf_token(client, "/ops/exports")

    assert client.post(f"/ops/exports/{mine.id}/pause").status_code == 400           # no token
    assert client.post(f"/ops/exports/{mine.id}/pause", data={"csrf_token": "forged"}).status_code == 400
    db_session.refresh(mine)
    assert mine.paused is False

    r = client.post(f"/ops/exports/{mine.id}/pause", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["Location"].endswith("/ops/exports")
    db_session.refresh(mine)
    assert mine.paused is True
    again = client.post(f"/ops/exports/{mine.id}/pause", data={"csrf_token": token},
                        headers={"Accept": "application/json"}).get_json()
    assert again["paused"] is True and again["changed"] is False

    resumed = client.post(f"/ops/exports/{mine.id}/resume", data={"csrf_token": token},
                          headers={"Accept": "application/json"}).get_json()
    assert resumed["paused"] is False and resumed["changed"] is True
    db_session.expire_all()
    fresh = db_session.get(ExportSchedule, mine.id)
    # resumed from now: the next fire is the next 02:00 UTC, not the stored 2030 date
    assert fresh.paused is False and fresh.next_run_at < dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)

    for target in (other.id, uuid.uuid4(), "not-a-uuid"):
        assert client.post(f"/ops/exports/{target}/pause", data={"csrf_token": token}).status_code == 404
    db_session.refresh(other)
    assert other.paused is False


def test_the_exports_page_needs_an_admin_session(client, db_session):
    schedule = _schedule(db_session, "t-x")
    assert client.get("/ops/exports").status_code == 302
    assert client.get("/ops/api/exports").status_code == 401
    token = csrf_token(client)
    assert client.post(f"/ops/exports/{schedule.id}/pause", data={"csrf_token": token}).status_code == 401
    db_session.refresh(schedule)
    assert schedule.paused is False
