"""Synkronus push and pull end to end: real worker process, real PostgreSQL and Redis."""
import concurrent.futures
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from models.db import session_scope
from tests.conftest import wait_for
from tests.factories import bearer, make_user

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "synkronus"


@pytest.fixture
def tenant_user(real_sessions):
    tenant = f"syn-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        user = make_user(s, role="read-write", tenant=tenant)
    return user


@pytest.fixture
def h(live_app, tenant_user):
    return bearer(live_app, tenant_user)


def obs(i, **kw):
    record = {"observation_id": f"obs-{i}", "form_type": kw.pop("form_type", "survey"), "form_version": "1",
              "data": {"n": i, "name": f"person {i}"}, "created_at": "2024-01-15T10:30:00Z",
              "updated_at": "2024-01-15T10:30:00Z", "deleted": False}
    record.update(kw)
    return record


def push(client, headers, records, tx=None, client_id="c1"):
    return client.post("/sync/push", json={"transmission_id": tx or uuid.uuid4().hex, "client_id": client_id,
                                           "records": records}, headers=headers)


def pull_all(client, headers, client_id="c1", since=0, limit=500, **extra):
    records, pages = [], 0
    while True:
        r = client.post(f"/sync/pull?limit={limit}", json={"client_id": client_id, "since": {"version": since}, **extra},
                        headers=headers)
        assert r.status_code == 200, r.data
        body = r.get_json()
        assert body["records"] is not None and body["sync_format_version"] == "1.0"
        records += body["records"]
        pages += 1
        if not body["has_more"]:
            return records, body, pages
        since = body["change_cutoff"]


def test_fixture_payloads_round_trip(live_worker, live_app, h):
    client = live_app.test_client()
    created = json.loads((FIXTURES / "synkronus-test_observations.json").read_text())
    r = client.post("/sync/push", json=created, headers=h)
    assert r.status_code == 200, r.data
    assert r.get_json()["success_count"] == len(created["records"])
    records, body, _ = pull_all(client, h, client_id=created["client_id"])
    by_id = {rec["observation_id"]: rec for rec in records}
    for sent in created["records"]:
        got = by_id[sent["observation_id"]]
        assert got["data"] == sent["data"] and got["form_type"] == sent["form_type"]
        assert got["form_version"] == sent["form_version"] and got["deleted"] is False
        assert got["created_at"] == sent["created_at"].replace("+00:00", "Z")
    update = json.loads((FIXTURES / "synkronus-test_update_observations.json").read_text())
    assert client.post("/sync/push", json=update, headers=h).status_code == 200
    delete = json.loads((FIXTURES / "synkronus-test_delete_observations.json").read_text())
    assert client.post("/sync/push", json=delete, headers=h).status_code == 200
    records, _, _ = pull_all(client, h, client_id=created["client_id"])
    final = {rec["observation_id"]: rec for rec in records}
    assert len(final) == len(records), "each record appears once in a full pull"
    deleted_ids = {rec["observation_id"] for rec in delete["records"]}
    for oid, rec in final.items():
        assert rec["deleted"] is (oid in deleted_ids)
    updated = update["records"][0]
    if updated["observation_id"] not in deleted_ids:
        assert final[updated["observation_id"]]["data"] == updated["data"]


def test_replay_answers_the_same_bytes_and_applies_nothing(live_worker, live_app, h, real_sessions, tenant_user):
    client = live_app.test_client()
    tx = uuid.uuid4().hex
    first = push(client, h, [obs(1), obs(2)], tx=tx)
    assert first.status_code == 200
    with session_scope(real_sessions) as s:
        changes = s.execute(text("SELECT count(*) FROM record_changes WHERE tenant_id = :t"),
                            {"t": tenant_user.tenant_id}).scalar()
        jobs_before = s.execute(text("SELECT count(*) FROM jobs WHERE tenant_id = :t"), {"t": tenant_user.tenant_id}).scalar()
    again = push(client, h, [obs(1), obs(2)], tx=tx)
    assert again.status_code == 200 and again.data == first.data
    with session_scope(real_sessions) as s:
        assert s.execute(text("SELECT count(*) FROM record_changes WHERE tenant_id = :t"),
                         {"t": tenant_user.tenant_id}).scalar() == changes
        assert s.execute(text("SELECT count(*) FROM jobs WHERE tenant_id = :t"),
                         {"t": tenant_user.tenant_id}).scalar() == jobs_before
    conflict = push(client, h, [obs(1), obs(3)], tx=tx)
    assert conflict.status_code == 409 and conflict.get_json()["error"] == "transmission_conflict"


def test_a_small_push_lives_in_its_job_row_until_applied_and_a_large_one_in_the_blob_store(
        live_worker, live_app, h, real_sessions, tenant_user, monkeypatch):
    from workers import api
    client = live_app.test_client()

    def job_of(tx):
        with session_scope(real_sessions) as s:
            return s.execute(text("SELECT j.status, j.blob_sha256, j.payload IS NULL AND j.payload_text IS NULL AS dropped, j.params "
                                  "FROM receipts r JOIN jobs j ON j.id = r.job_id "
                                  "WHERE r.tenant_id = :t AND r.transmission_id = :x"),
                             {"t": tenant_user.tenant_id, "x": tx}).one()

    small = uuid.uuid4().hex
    assert push(client, h, [obs(1), obs(2)], tx=small).status_code == 200
    status, blob, dropped, params = job_of(small)
    # kept in the row (no blob), dropped once applied; the client's cursor was read in the same statement
    assert (status, blob, dropped) == ("COMPLETED", None, True) and "client_since" in params
    monkeypatch.setattr(api, "INLINE_PAYLOAD_BYTES", 100)
    large = uuid.uuid4().hex
    first = push(client, h, [obs(3), obs(4)], tx=large)
    assert first.status_code == 200 and first.get_json()["success_count"] == 2
    status, blob, dropped, _ = job_of(large)
    assert status == "COMPLETED" and blob is not None and dropped
    # a replay of either is the same answer, a reuse with other content still a conflict
    assert push(client, h, [obs(3), obs(4)], tx=large).data == first.data
    assert push(client, h, [obs(1)], tx=small).status_code == 409


def test_read_only_push_is_403(live_app, real_sessions):
    with session_scope(real_sessions) as s:
        reader = make_user(s, role="read-only", tenant=f"ro-{uuid.uuid4().hex[:6]}")
    r = push(live_app.test_client(), bearer(live_app, reader), [obs(1)])
    assert r.status_code == 403 and r.mimetype == "application/problem+json"


def test_push_envelope_errors_are_400(live_app, h):
    client = live_app.test_client()
    assert client.post("/sync/push", json={"client_id": "c", "records": []}, headers=h).status_code == 400
    assert client.post("/sync/push", json={"transmission_id": "t", "records": []}, headers=h).status_code == 400
    assert client.post("/sync/push", json={"transmission_id": "t", "client_id": "c", "records": {}},
                       headers=h).status_code == 400
    assert client.post("/sync/push", data=b"{nope", content_type="application/json", headers=h).status_code == 400
    r = client.post("/sync/pull", json={}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"


def test_one_percent_bad_records_are_reported_and_the_rest_applied(live_worker, live_app, h):
    client = live_app.test_client()
    records = [obs(i) for i in range(200)]
    bad_positions = {7: "NaN", 42: "nul", 99: "type", 150: "missing", 180: "huge"}
    records[7]["data"] = "__NAN__"
    records[42]["data"] = {"x": "a\u0000b"}
    records[99]["data"] = [1, 2]
    records[150]["observation_id"] = ""
    records[180]["data"] = {"big": "y" * 300_000}
    raw = json.dumps({"transmission_id": uuid.uuid4().hex, "client_id": "c1", "records": records})
    raw = raw.replace('"__NAN__"', '{"v": NaN}')
    r = client.post("/sync/push", data=raw, content_type="application/json", headers=h)
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert body["success_count"] == 195
    failed = {f["index"]: f for f in body["failed_records"]}
    assert set(failed) == set(bad_positions)
    assert failed[150]["error"] == "observation_id is required"
    assert all(f["record"] is not None for f in failed.values())
    pulled, _, _ = pull_all(client, h)
    ids = {rec["observation_id"] for rec in pulled}
    assert len(ids) == 195 and "obs-7" not in ids and "obs-42" not in ids


def test_missing_form_type_is_a_warning_and_geolocation_is_stored(live_worker, live_app, h):
    client = live_app.test_client()
    geo = {"latitude": -1.28, "longitude": 36.82, "accuracy": 5.0, "altitude": None, "altitude_accuracy": None}
    r = push(client, h, [obs(1, form_type=""), obs(2, geolocation=geo),
                         obs(3, geolocation={"latitude": 91, "longitude": 0})])
    body = r.get_json()
    assert body["success_count"] == 2
    assert body["warnings"] == [{"id": "obs-1", "code": "MISSING_FORM_TYPE",
                                 "message": "form_type is empty; the record was stored without one"}]
    assert body["failed_records"][0]["index"] == 2
    pulled, _, _ = pull_all(client, h)
    assert {rec["observation_id"]: rec["geolocation"] for rec in pulled}["obs-2"] == geo


def test_pull_pages_filters_and_limits(live_worker, live_app, h):
    client = live_app.test_client()
    assert push(client, h, [obs(i, form_type="a" if i % 2 else "b") for i in range(30)]).status_code == 200
    records, last, pages = pull_all(client, h, limit=7)
    assert len(records) == 30 and pages == 5
    versions = [rec["version"] for rec in records]
    assert versions == sorted(versions) and len(set(versions)) == 30
    assert last["current_version"] >= versions[-1]
    only_a, _, _ = pull_all(client, h, schema_types=["a"])
    assert {rec["form_type"] for rec in only_a} == {"a"} and len(only_a) == 15
    r = client.post("/sync/pull?schemaType=b&limit=abc", json={"client_id": "c1"}, headers=h)
    assert {rec["form_type"] for rec in r.get_json()["records"]} == {"b"}
    r = client.post("/sync/pull?limit=0", json={"client_id": "c1"}, headers=h)
    assert len(r.get_json()["records"]) == 30 and r.get_json()["has_more"] is False  # default 50
    r = client.post("/sync/pull?limit=100000", json={"client_id": "c1"}, headers=h)
    assert r.status_code == 200
    empty = client.post("/sync/pull", json={"client_id": "c1", "since": {"version": versions[-1]}}, headers=h).get_json()
    assert empty["records"] == [] and empty["change_cutoff"] == versions[-1] and empty["has_more"] is False


def test_push_answers_a_safe_current_version(live_worker, live_app, h):
    client = live_app.test_client()
    assert push(client, h, [obs(1)], client_id="writer").status_code == 200
    _, last, _ = pull_all(client, h, client_id="reader")
    assert push(client, h, [obs(2)], client_id="writer").status_code == 200
    # the reader pushes: changes by others after its last pull stay above what it is told
    r = push(client, h, [obs(3)], client_id="reader")
    assert r.get_json()["current_version"] <= last["current_version"]
    pulled, _, _ = pull_all(client, h, client_id="reader", since=r.get_json()["current_version"])
    assert "obs-2" in {rec["observation_id"] for rec in pulled}


def test_conflicting_push_is_a_warning_and_last_writer_wins(live_worker, live_app, h):
    client = live_app.test_client()
    assert push(client, h, [obs(1)], client_id="a").status_code == 200
    pull_all(client, h, client_id="a")
    pull_all(client, h, client_id="b")
    assert push(client, h, [obs(1, data={"by": "b"})], client_id="b").status_code == 200
    r = push(client, h, [obs(1, data={"by": "a"})], client_id="a")
    body = r.get_json()
    assert body["success_count"] == 1
    assert [w["code"] for w in body["warnings"]] == ["CONFLICT"]
    pulled, _, _ = pull_all(client, h, client_id="z")
    assert pulled[-1]["data"] == {"by": "a"}


def test_concurrent_pushes_of_the_same_records_converge(live_worker, live_app, h, real_sessions, tenant_user):
    def one_client(n):
        client = live_app.test_client()
        return push(client, h, [obs(i, data={"writer": n}) for i in range(100)], client_id=f"c{n}").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(one_client, range(10)))
    assert statuses == [200] * 10
    with session_scope(real_sessions) as s:
        rows = s.execute(text("SELECT record_key, count(*) FROM records WHERE tenant_id = :t GROUP BY 1"),
                         {"t": tenant_user.tenant_id}).all()
    assert len(rows) == 100 and all(n == 1 for _, n in rows)


def test_slow_job_answers_202_then_the_replay_has_the_receipt(live_worker, settings, real_sessions, celery_app,
                                                             redis_client, tenant_user):
    from web.app import create_app
    app = create_app(settings.replace(sync_wait_seconds=0), session_factory=real_sessions, celery_app=celery_app,
                     redis_client=redis_client)
    client = app.test_client()
    headers = bearer(app, tenant_user)
    tx = uuid.uuid4().hex
    many = [obs(i) for i in range(3000)]  # long enough that the answer cannot be ready at once
    r = push(client, headers, many, tx=tx)
    assert r.status_code == 202
    location = r.headers["Location"]
    assert location == r.get_json()["status_url"]
    wait_for(lambda: client.get(location, headers=headers).get_json()["status"] == "COMPLETED", 30)
    job = client.get(location, headers=headers).get_json()
    assert job["counts"]["accepted"] == 3000 and job["progress"]["percent"] == 100.0
    final = push(client, headers, many, tx=tx)
    assert final.status_code == 200 and final.get_json()["success_count"] == 3000


def test_index_step_counts_types_in_one_coalesced_job_and_builds_no_search_documents(
        live_worker, live_app, h, real_sessions, tenant_user):
    client = live_app.test_client()
    assert push(client, h, [obs(i, form_type="household") for i in range(3)] + [obs(9, form_type="visit")]).status_code == 200
    push(client, h, [obs(0, form_type="household", deleted=True)])
    for n in range(5):
        push(client, h, [obs(100 + n, form_type="visit")])

    def counts():
        with session_scope(real_sessions) as s:
            return {r.record_type: (r.live, r.deleted) for r in s.execute(
                text("SELECT record_type, live, deleted FROM read_type_counts WHERE tenant_id = :t"),
                {"t": tenant_user.tenant_id})}
    wait_for(lambda: counts() == {"household": (2, 1), "visit": (6, 0)}, 30, message="read model counts")
    with session_scope(real_sessions) as s:
        # Synkronus observations are never searched: no search documents are kept for them
        docs = s.execute(text("SELECT count(*) FROM read_search_documents WHERE tenant_id = :t"),
                         {"t": tenant_user.tenant_id}).scalar()
        pushes, index_jobs = s.execute(text(
            "SELECT count(*) FILTER (WHERE kind = 'synkronus.push'), count(*) FILTER (WHERE kind = 'engine.index') "
            "FROM jobs WHERE tenant_id = :t"), {"t": tenant_user.tenant_id}).one()
    assert docs == 0
    assert pushes == 7 and 1 <= index_jobs <= 7


def test_push_while_redis_is_down_is_kept_and_applied_after_the_sweep(live_worker, settings, real_sessions,
                                                                     celery_app, tenant_user):
    """The broker and the doorbell are unreachable: the push is stored, answered 202, and the sweeper
    sends it once Redis is back."""
    import redis as redis_lib

    from web.app import create_app
    from workers.app import make_celery
    from workers.runtime import Runtime
    from workers.sweeper import sweep_once
    dead_settings = settings.replace(redis_url="redis://127.0.0.1:1/0", sync_wait_seconds=1)
    dead_celery = make_celery(dead_settings, Runtime(dead_settings, real_sessions))
    dead_celery.conf.broker_connection_retry = False
    dead_celery.conf.broker_connection_max_retries = 0
    dead_celery.conf.broker_transport_options = {"max_retries": 0}
    dead_redis = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    app = create_app(dead_settings, session_factory=real_sessions, celery_app=dead_celery, redis_client=dead_redis)
    client = app.test_client()
    headers = bearer(app, tenant_user)
    r = push(client, headers, [obs(1), obs(2)], tx="while-down")
    assert r.status_code == 202
    job_url = r.headers["Location"]
    wait_for(lambda: sweep_once(celery_app.runtime, celery_app)["sent"] >= 1 or
             live_app_status(real_sessions, job_url) == "COMPLETED", 30, interval=1.2)
    wait_for(lambda: live_app_status(real_sessions, job_url) == "COMPLETED", 30)


def live_app_status(real_sessions, job_url):
    from models.tables import Job
    with session_scope(real_sessions) as s:
        return s.get(Job, uuid.UUID(job_url.rsplit("/", 1)[1])).status
