"""The ops console through Flask's test client: sign-in, sessions, CSRF, tenant scoping, escaping, job
controls, the failed-rows CSV and bad input."""
from __future__ import annotations

import csv
import io
import time

import orjson

from models.tables import Job
from tests.factories import make_user
from tests.web.ops.helpers import csrf_token, make_job, sign_in
from workers.heartbeat import WORKERS_KEY

PAGES = ["/ops/", "/ops/jobs", "/ops/devices"]
APIS = ["/ops/api/overview", "/ops/api/jobs", "/ops/api/devices"]


def test_pages_and_apis_need_an_admin_session(client, db_session):
    job = make_job(db_session, "t-a")
    for path in PAGES + [f"/ops/jobs/{job.id}"]:
        r = client.get(path)
        assert r.status_code == 302 and "/ops/login" in r.headers["Location"], path
    for path in APIS + [f"/ops/api/jobs/{job.id}", f"/ops/jobs/{job.id}/failed.csv"]:
        assert client.get(path).status_code == 401, path
    token = csrf_token(client)
    for action in ("cancel", "retry"):
        r = client.post(f"/ops/jobs/{job.id}/{action}", data={"csrf_token": token, "attempts": "1"})
        assert r.status_code == 401, action
    db_session.refresh(job)
    assert job.status == "RUNNING"


def test_sign_in_sets_a_hardened_cookie_and_opens_the_pages(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    r = sign_in(client, admin)
    assert r.status_code == 303 and r.headers["Location"].endswith("/ops/")
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    for path in PAGES + APIS:
        assert client.get(path).status_code == 200, path
    assert client.post("/ops/logout", data={"csrf_token": csrf_token(client, "/ops/")}).status_code == 303
    assert client.get("/ops/").status_code == 302


def test_cookie_is_secure_behind_tls(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    page = client.get("/ops/login", base_url="https://ops.example").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/ops/login", base_url="https://ops.example", headers={"Referer": "https://ops.example/ops/login"},
                    data={"csrf_token": token, "username": admin.username, "password": "pw-secret"})
    assert r.status_code == 303 and "Secure" in r.headers["Set-Cookie"]


def test_wrong_password_and_non_admins_are_refused(client, db_session):
    admin = make_user(db_session, role="admin")
    writer = make_user(db_session, role="read-write")
    assert sign_in(client, admin, password="nope").status_code == 401
    assert sign_in(client, writer).status_code == 403
    assert client.get("/ops/api/overview").status_code == 401


def test_a_password_change_ends_the_session(client, db_session):
    from models.users import set_password
    admin = make_user(db_session, role="admin", is_system=True)
    sign_in(client, admin)
    assert client.get("/ops/api/overview").status_code == 200
    set_password(db_session, admin, "another-one", rounds=4)
    db_session.commit()
    assert client.get("/ops/api/overview").status_code == 401


def test_posts_without_the_csrf_token_are_refused(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    sign_in(client, admin)
    failed = make_job(db_session, "t-a", status="FAILED")
    running = make_job(db_session, "t-a")
    assert client.post(f"/ops/jobs/{running.id}/cancel").status_code == 400
    assert client.post(f"/ops/jobs/{running.id}/cancel", data={"csrf_token": "forged"}).status_code == 400
    assert client.post(f"/ops/jobs/{failed.id}/retry", data={"attempts": str(failed.attempts)}).status_code == 400
    assert client.post("/ops/login", data={"username": admin.username, "password": "pw-secret"}).status_code == 400
    db_session.refresh(failed)
    db_session.refresh(running)
    assert (failed.status, running.status) == ("FAILED", "RUNNING")


def test_another_tenants_job_is_not_found_for_a_tenant_admin(client, db_session):
    admin = make_user(db_session, role="admin", tenant="pb")
    mine = make_job(db_session, "pb.amritsar")
    theirs = make_job(db_session, "mz")
    sign_in(client, admin)
    token = csrf_token(client, "/ops/")
    assert client.get(f"/ops/jobs/{mine.id}").status_code == 200
    for path in (f"/ops/jobs/{theirs.id}", f"/ops/api/jobs/{theirs.id}", f"/ops/jobs/{theirs.id}/failed.csv",
                 "/ops/jobs/not-a-uuid", "/ops/api/jobs/00000000-0000-0000-0000-000000000000"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/ops/jobs/{theirs.id}/cancel", data={"csrf_token": token}).status_code == 404
    listed = {j["id"] for j in client.get("/ops/api/jobs").get_json()["jobs"]}
    assert str(mine.id) in listed and str(theirs.id) not in listed
    assert client.get("/ops/api/jobs?tenant=mz").get_json()["jobs"] == []
    narrowed = {j["id"] for j in client.get("/ops/api/jobs?tenant=pb.amritsar").get_json()["jobs"]}
    assert str(mine.id) in narrowed
    running = {j["id"] for j in client.get("/ops/api/overview").get_json()["running"]}
    assert str(theirs.id) not in running and str(mine.id) in running
    # a shared worker running both jobs shows the tenant admin only its own
    redis_client = client.application.extensions["fieldsync_redis"]()
    for pid, job in ((1, mine), (2, theirs)):
        redis_client.hset(WORKERS_KEY, f"scope-test@host|{pid}", orjson.dumps(
            {"hostname": "scope-test@host", "pid": pid, "queues": ["ingest"], "job": str(job.id),
             "kind": job.kind, "beat": time.time()}))
    try:
        worker = next(w for w in client.get("/ops/api/overview").get_json()["workers"]
                      if w["hostname"] == "scope-test@host")
        assert [j["id"] for j in worker["jobs"]] == [str(mine.id)] and worker["processes"] == 2
    finally:
        redis_client.hdel(WORKERS_KEY, "scope-test@host|1", "scope-test@host|2")
    db_session.refresh(theirs)
    assert theirs.status == "RUNNING"


def test_a_record_error_with_markup_renders_as_text(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    evil = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
    job = make_job(db_session, "t-a", errors=[{"position": 0, "record_id": evil, "code": "invalid_type",
                                               "message": evil, "path": "data", "record": evil}])
    sign_in(client, admin)
    page = client.get(f"/ops/jobs/{job.id}").get_data(as_text=True)
    assert "<script>document" not in page and "<img src=x" not in page
    assert "&lt;script&gt;document.title=&#34;owned&#34;&lt;/script&gt;" in page
    assert "script-src 'self'" in client.get(f"/ops/jobs/{job.id}").headers["Content-Security-Policy"]


def test_cancel_and_retry_are_conditional_and_idempotent(client, db_session, broker):
    admin = make_user(db_session, role="admin", is_system=True)
    sign_in(client, admin)
    token = csrf_token(client, "/ops/")
    queued = make_job(db_session, "t-a", status="QUEUED")
    r = client.post(f"/ops/jobs/{queued.id}/cancel", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert r.get_json() == {"id": str(queued.id), "status": "CANCELLED", "changed": True}
    r = client.post(f"/ops/jobs/{queued.id}/cancel", data={"csrf_token": token}, headers={"Accept": "application/json"})
    assert r.get_json()["changed"] is False
    done = make_job(db_session, "t-a", status="COMPLETED")
    assert client.post(f"/ops/jobs/{done.id}/cancel", data={"csrf_token": token},
                       headers={"Accept": "application/json"}).get_json()["status"] == "COMPLETED"

    failed = make_job(db_session, "t-a", status="FAILED")
    form = {"csrf_token": token, "attempts": str(failed.attempts)}
    r = client.post(f"/ops/jobs/{failed.id}/retry", data=form)
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/ops/jobs/{failed.id}")
    db_session.expire_all()
    job = db_session.get(Job, failed.id)
    assert (job.status, job.error_code, job.checkpoint) == ("QUEUED", None, 0)
    assert job.max_attempts > job.attempts
    assert client.post(f"/ops/jobs/{failed.id}/retry", data=form,
                       headers={"Accept": "application/json"}).get_json()["changed"] is False
    sent = [args[0] for _, args, _ in broker.sent]
    assert sent == [str(failed.id)]  # the second click sent nothing
    assert client.post(f"/ops/jobs/{done.id}/retry", data={"csrf_token": token, "attempts": str(done.attempts)},
                       headers={"Accept": "application/json"}).get_json()["changed"] is False


def test_failed_rows_csv_has_every_refused_row_and_defuses_formulas(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    errors = [{"position": i, "record_id": f"r{i}", "code": "invalid_type", "message": f"bad {i}", "path": "data",
               "record": '{"n": %d}' % i} for i in range(1200)]
    errors.append({"position": 1200, "record_id": "=HYPERLINK(\"x\")", "code": "too_deep", "message": "m",
                   "path": None, "record": "x"})
    errors.append({"position": 5, "record_id": "r5", "code": "CONFLICT", "message": "warned", "path": None,
                   "record": None, "severity": "warning"})
    job = make_job(db_session, "t-a", status="COMPLETED", errors=errors)
    sign_in(client, admin)
    r = client.get(f"/ops/jobs/{job.id}/failed.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert f"job-{job.id}-failed-rows.csv" in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0] == ["position", "record_id", "code", "message", "path", "record"]
    assert len(rows) == 1 + 1201  # the warning is not a failed row
    assert rows[1] == ["0", "r0", "invalid_type", "bad 0", "data", '{"n": 0}']
    assert [int(row[0]) for row in rows[1:]] == list(range(1201))
    assert rows[-1][1] == "'=HYPERLINK(\"x\")"


def test_bad_filters_are_400_never_500(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    sign_in(client, admin)
    for query in ("status=DONE", "limit=0", "limit=abc", "since=yesterday", "since=2026-01-01T00:00:00",
                  "tenant=" + "x" * 300, "kind=a%00b", "before=99999-01-01", "limit=" + "9" * 40):
        for path in ("/ops/api/jobs", "/ops/jobs"):
            r = client.get(f"{path}?{query}")
            assert r.status_code == 400, (path, query, r.status_code)
            assert "Traceback" not in r.get_data(as_text=True)
    assert client.get("/ops/api/devices?limit=-1").status_code == 400
    assert client.get("/ops/api/jobs?status=FAILED&since=2026-01-01T00:00:00Z").status_code == 200
    token = csrf_token(client, "/ops/")
    failed = make_job(db_session, "t-a", status="FAILED")
    for attempts in ("", "x", "-1", "9" * 30):
        r = client.post(f"/ops/jobs/{failed.id}/retry", data={"csrf_token": token, "attempts": attempts})
        assert r.status_code == 400, attempts


def test_login_redirects_only_inside_the_console(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    for target, expected in (("https://evil.example/", "/ops/"), ("//evil.example/ops", "/ops/"),
                             ("/ops/jobs?status=FAILED", "/ops/jobs?status=FAILED")):
        token = csrf_token(client)
        r = client.post("/ops/login", data={"csrf_token": token, "username": admin.username,
                                            "password": "pw-secret", "next": target})
        assert r.headers["Location"].endswith(expected), target


def test_overview_shows_queues_running_jobs_and_failures(client, db_session):
    admin = make_user(db_session, role="admin", is_system=True)
    make_job(db_session, "t-a", status="QUEUED")
    running = make_job(db_session, "t-a")
    failed = make_job(db_session, "t-a", status="FAILED")
    sign_in(client, admin)
    body = client.get("/ops/api/overview").get_json()
    ingest = next(q for q in body["queues"] if q["queue"] == "ingest")
    assert ingest["queued"] >= 1 and ingest["running"] >= 1 and ingest["oldest_age_seconds"] >= 0
    assert str(running.id) in {j["id"] for j in body["running"]}
    assert body["failures_24h"] >= 1 and str(failed.id) in {j["id"] for j in body["recent_failures"]}
    assert len(body["applied_per_minute"]) == 60
