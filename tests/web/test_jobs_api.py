"""GET /jobs/<id> and /jobs/<id>/errors: JWT-protected and tenant-scoped."""
from models import jobs
from models.users import ensure_tenant
from tests.factories import bearer, make_user
from models.kinds import PROBES


def _job(session, tenant):
    ensure_tenant(session, tenant)
    job, _ = jobs.create_job(session, tenant_id=tenant, kind=PROBES["ingest"])
    session.flush()
    jobs.claim(session, job.id, 60)
    jobs.progress(session, job.id, done=25, total=100, counts={"accepted": 20, "rejected": 5})
    jobs.record_errors(session, job.id, [
        {"position": i, "record_id": f"r{i}", "code": "invalid_type", "message": "bad", "path": "data"}
        for i in range(15)])
    session.commit()
    return job


def test_job_status_shows_progress_counts_and_first_errors(app, client, db_session):
    user = make_user(db_session, tenant="t-a")
    job = _job(db_session, "t-a")
    r = client.get(f"/jobs/{job.id}", headers=bearer(app, user))
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "RUNNING"
    assert body["progress"] == {"done": 25, "total": 100, "percent": 25.0}
    assert body["counts"] == {"accepted": 20, "rejected": 5}
    assert len(body["first_errors"]) == 10 and body["first_errors"][0]["record_id"] == "r0"


def test_job_errors_are_paged(app, client, db_session):
    user = make_user(db_session, tenant="t-a")
    job = _job(db_session, "t-a")
    r = client.get(f"/jobs/{job.id}/errors?limit=10", headers=bearer(app, user))
    page1 = r.get_json()
    assert len(page1["errors"]) == 10 and page1["has_more"] is True
    r = client.get(page1["next"], headers=bearer(app, user))
    page2 = r.get_json()
    assert len(page2["errors"]) == 5 and page2["has_more"] is False
    assert {e["record_id"] for e in page1["errors"]}.isdisjoint({e["record_id"] for e in page2["errors"]})


def test_other_tenants_job_is_not_found(app, client, db_session):
    outsider = make_user(db_session, tenant="t-b")
    job = _job(db_session, "t-a")
    assert client.get(f"/jobs/{job.id}", headers=bearer(app, outsider)).status_code == 404
    assert client.get(f"/jobs/{job.id}/errors", headers=bearer(app, outsider)).status_code == 404


def test_parent_tenant_and_system_admin_see_it(app, client, db_session):
    job = _job(db_session, "pb.amritsar")
    parent = make_user(db_session, tenant="pb")
    sysadmin = make_user(db_session, role="admin", is_system=True)
    assert client.get(f"/jobs/{job.id}", headers=bearer(app, parent)).status_code == 200
    assert client.get(f"/jobs/{job.id}", headers=bearer(app, sysadmin)).status_code == 200
    sibling = make_user(db_session, tenant="pbx")
    assert client.get(f"/jobs/{job.id}", headers=bearer(app, sibling)).status_code == 404


def test_jobs_need_a_token(client):
    r = client.get("/jobs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 401
    assert r.mimetype == "application/problem+json" and r.get_json()["status"] == 401


def test_unknown_and_garbage_ids_are_404(app, client, db_session):
    user = make_user(db_session)
    assert client.get("/jobs/not-a-uuid", headers=bearer(app, user)).status_code == 404
    assert client.get("/jobs/00000000-0000-0000-0000-000000000000", headers=bearer(app, user)).status_code == 404


def test_job_error_paging_beyond_a_bigint_is_400_not_500(app, client, db_session):
    user = make_user(db_session, tenant="t-a")
    job = _job(db_session, "t-a")
    for query in (f"after={2 ** 63}", f"after={-2 ** 63 - 1}", "after=" + "9" * 5000, "limit=%00"):
        r = client.get(f"/jobs/{job.id}/errors?{query}", headers=bearer(app, user))
        assert r.status_code == 400, (query, r.get_data(as_text=True))
        assert r.get_json()["error"] == "bad_request" and isinstance(r.get_json()["message"], str)
    r = client.get(f"/jobs/{job.id}/errors?after={2 ** 63 - 1}", headers=bearer(app, user))
    assert r.status_code == 200 and r.get_json()["errors"] == []
