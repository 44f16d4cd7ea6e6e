"""Hostile values in one record of a batch [ok1, bad, ok2], for every dialect, through a real worker,
PostgreSQL and Redis: ok1 and ok2 are stored, the bad record is rejected with a stable code at its
position, the job COMPLETES, and no error or failure carries driver text or record data. Bodies are built
as raw bytes, since a Python str cannot hold every hostile JSON escape."""
import io
import json
import uuid

import pytest
from sqlalchemy import text

from models.db import session_scope
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import wait_for
from tests.factories import bearer, make_user, token_for
from tests.web.digit.support import envelope, household

MARK = "HOSTILE7"  # in every bad value: record data that must not reach an error message
DRIVER_WORDS = ("psycopg2", "COPY", "SQLSTATE", "line 1", "index row", "Traceback", "jsonb", MARK)

DEEP = b"[" * 999 + b'"' + MARK.encode() + b'"' + b"]" * 999
BIG = b"9" * 5000
LONG = b'"' + MARK.encode() + b"t" * 20_000 + b'"'


def s(raw: bytes) -> bytes:
    """A JSON string literal holding MARK and `raw` (already JSON-escaped)."""
    return b'"' + MARK.encode() + raw + b'"'


def _clean(message):
    assert message is not None
    for word in DRIVER_WORDS:
        assert word not in message, message


def _records(session, tenant, namespace):
    return {row.record_key: row for row in session.execute(text(
        "SELECT record_key, record_type, data FROM records WHERE tenant_id = :t AND namespace = :n"),
        {"t": tenant, "n": namespace})}


def _errors(session, job_id):
    return session.execute(text("SELECT position, code, message, record_id, path FROM job_record_errors "
                                "WHERE job_id = :j AND severity = 'error' ORDER BY position"),
                           {"j": str(job_id)}).all()


def _only_job(session, tenant, kind):
    jobs = session.query(Job).filter(Job.tenant_id == tenant, Job.kind == kind).populate_existing().all()
    assert len(jobs) == 1
    return jobs[0]


# --- Synkronus: /sync/push -------------------------------------------------------------------------

def syn(obs=b'"bad-1"', form=b'"survey"', data=b'{"q": 1}') -> bytes:
    return (b'{"observation_id": ' + obs + b', "form_type": ' + form + b', "form_version": "1", "data": ' + data
            + b', "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-15T10:30:00Z", "deleted": false}')


SYNKRONUS_CASES = {
    "nul_in_value": (syn(data=b'{"q": ' + s(b"\\u0000") + b"}"), "nul_character"),
    "nul_in_id": (syn(obs=s(b"\\u0000")), "nul_character"),
    "nul_in_key": (syn(data=b'{"a\\u0000": 1}'), "nul_character"),
    "nul_in_type": (syn(form=s(b"\\u0000")), "nul_character"),
    "surrogate_in_value": (syn(data=b'{"q": ' + s(b"\\ud800") + b"}"), "lone_surrogate"),
    "surrogate_in_id": (syn(obs=s(b"\\ud800")), "lone_surrogate"),
    "surrogate_in_key": (syn(data=b'{"\\ud800": 1}'), "lone_surrogate"),
    "surrogate_in_type": (syn(form=s(b"\\udfff")), "lone_surrogate"),
    "nested_1000_deep": (syn(data=b'{"a": ' + DEEP + b"}"), "too_deep"),
    "integer_5000_digits": (syn(data=b'{"n": ' + BIG + b"}"), "number_too_large"),
    "type_20kb": (syn(form=LONG), "invalid_form_type"),
    "id_20kb": (syn(obs=LONG), "invalid_observation_id"),
}


def ok_obs(i: int) -> bytes:
    return json.dumps({"observation_id": f"ok-{i}", "form_type": "survey", "form_version": "1",
                       "data": {"n": i}, "created_at": "2024-01-15T10:30:00Z",
                       "updated_at": "2024-01-15T10:30:00Z", "deleted": False}).encode()


@pytest.mark.parametrize("case", sorted(SYNKRONUS_CASES))
def test_synkronus_push_rejects_only_the_hostile_record(case, live_worker, live_app, real_sessions):
    bad, code = SYNKRONUS_CASES[case]
    tenant = f"hostile-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as session:
        user = make_user(session, role="read-write", tenant=tenant)
    body = (b'{"transmission_id": "tx-' + uuid.uuid4().hex.encode() + b'", "client_id": "c1", "records": ['
            + ok_obs(1) + b", " + bad + b", " + ok_obs(2) + b"]}")
    resp = live_app.test_client().post("/sync/push", data=body, content_type="application/json",
                                       headers=bearer(live_app, user))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    answer = resp.get_json()
    assert answer["success_count"] == 2
    assert [f["index"] for f in answer["failed_records"]] == [1]
    _clean(answer["failed_records"][0]["error"])
    with session_scope(real_sessions) as session:
        job = wait_for(lambda: (lambda j: j if j.status in ("COMPLETED", "FAILED") else None)(
            _only_job(session, tenant, "synkronus.push")), 30, message=live_worker.tail())
        assert job.status == "COMPLETED", (job.error_code, job.error_detail)
        assert job.counts["accepted"] == 2 and job.counts["rejected"] == 1
        assert set(_records(session, tenant, "synkronus")) == {"ok-1", "ok-2"}
        errors = _errors(session, job.id)
        assert [(e.position, e.code) for e in errors] == [(1, code)]
        _clean(errors[0].message)


def _finished_job(real_sessions, tenant, kind, worker):
    def done():
        with session_scope(real_sessions) as session:
            job = _only_job(session, tenant, kind)
            return job if job.status in ("COMPLETED", "FAILED") else None
    return wait_for(done, 30, message=worker.tail())


# --- mSupply: POST /sync/v3/queued_records (and the stored batch, whatever the edge lets through) -----

def ms(sync=None, rtype=b'"item"', rid=b'"bad-1"', data=b'{"code": "x"}') -> bytes:
    sync = sync or b'"' + uuid.uuid4().hex.encode() + b'"'
    return (b'{"SyncID": ' + sync + b', "RecordType": ' + rtype + b', "RecordID": ' + rid
            + b', "SyncType": "I", "StoreID": "STORE4", "Data": ' + data + b"}")


MSUPPLY_CASES = {  # name: (bad record, code, whether the web edge passes it to the pipeline today)
    "nul_in_value": (ms(data=b'{"code": ' + s(b"\\u0000") + b"}"), "nul_character", True),
    "nul_in_sync_id": (ms(sync=s(b"\\u0000")), "nul_character", True),
    "nul_in_record_id": (ms(rid=s(b"\\u0000")), "nul_character", True),
    "nul_in_key": (ms(data=b'{"a\\u0000": 1}'), "nul_character", True),
    "nul_in_type": (ms(rtype=s(b"\\u0000")), "nul_character", True),
    "surrogate_in_value": (ms(data=b'{"code": ' + s(b"\\ud800") + b"}"), "lone_surrogate", False),
    "surrogate_in_record_id": (ms(rid=s(b"\\ud800")), "lone_surrogate", False),
    "surrogate_in_key": (ms(data=b'{"\\udbff": 1}'), "lone_surrogate", False),
    "nested_1000_deep": (ms(data=b'{"a": ' + DEEP + b"}"), "too_deep", False),
    "integer_5000_digits": (ms(data=b'{"n": ' + BIG + b"}"), "number_too_large", False),
    "type_20kb": (ms(rtype=LONG), "record_type_too_long", True),
    "id_20kb": (ms(rid=LONG), "key_too_long", True),
    "sync_id_20kb": (ms(sync=LONG), "invalid_sync_id", True),
}


def ok_ms(i: int) -> bytes:
    return json.dumps({"SyncID": uuid.uuid4().hex, "RecordType": "item", "RecordID": f"ok-{i}", "SyncType": "I",
                       "StoreID": "STORE4", "Data": {"code": f"A{i}"}}).encode()


@pytest.fixture
def ms_site(real_sessions):
    from tests.web.msupply.helpers import make_site
    tenant = f"hostile-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as session:
        ensure_tenant(session, tenant)
        site = make_site(session, tenant=tenant, site_id=4, store_id="STORE4")
    return site


def _check_msupply(real_sessions, site, code, worker):
    job = _finished_job(real_sessions, site.tenant_id, "msupply.push", worker)
    assert job.status == "COMPLETED", (job.error_code, job.error_detail)
    assert job.counts["accepted"] == 2 and job.counts["rejected"] == 1
    with session_scope(real_sessions) as session:
        assert set(_records(session, site.tenant_id, "msupply")) == {"item:ok-1", "item:ok-2"}
        errors = _errors(session, job.id)
    assert [(e.position, e.code) for e in errors] == [(1, code)]
    _clean(errors[0].message)


@pytest.mark.parametrize("case", sorted(name for name, (_, _, web) in MSUPPLY_CASES.items() if web))
def test_msupply_push_rejects_only_the_hostile_record(case, live_worker, live_app, real_sessions, ms_site):
    from tests.web.msupply.helpers import headers, route
    bad, code, _ = MSUPPLY_CASES[case]
    body = b"[" + ok_ms(1) + b", " + bad + b", " + ok_ms(2) + b"]"
    resp = live_app.test_client().post(f"/sync/v3/queued_records?{route(4)}", data=body,
                                       content_type="application/json", headers=headers(ms_site.name))
    assert resp.status_code == 200 and resp.get_json() == {}, resp.get_data(as_text=True)[:300]
    _check_msupply(real_sessions, ms_site, code, live_worker)


@pytest.mark.parametrize("case", sorted(MSUPPLY_CASES))
def test_msupply_stored_batch_rejects_only_the_hostile_record(case, live_worker, settings, celery_app, real_sessions,
                                                              ms_site):
    """The pipeline on a stored batch holding the hostile value as raw JSON, as a web edge that lets it
    through would write it."""
    from models.blobs import BlobStore
    from workers.msupply.jobs import submit_push
    bad, code, _ = MSUPPLY_CASES[case]
    payload = b"[" + ok_ms(1) + b", " + bad + b", " + ok_ms(2) + b"]"
    with session_scope(real_sessions) as session:
        submit_push(session, celery_app, BlobStore(settings.blob_dir), ms_site, payload, count=3,
                    sync_ids=[uuid.uuid4().hex], version=3)
    _check_msupply(real_sessions, ms_site, code, live_worker)


# --- DIGIT: filestore upload + /sync/file/v1/_create -------------------------------------------------

def dg(crid=b'"hh-bad"', value=b'"x"', extra=b"") -> bytes:
    return b'{"clientReferenceId": ' + crid + b', "firstName": ' + value + extra + b', "memberCount": 2}'


DIGIT_CASES = {  # name: (bad entity, code); the schema cases are NDJSON only
    "nul_in_value": (dg(value=s(b"\\u0000")), "NUL_CHARACTER"),
    "nul_in_id": (dg(crid=s(b"\\u0000")), "NUL_CHARACTER"),
    "nul_in_key": (dg(extra=b', "a\\u0000": 1'), "NUL_CHARACTER"),
    "surrogate_in_value": (dg(value=s(b"\\ud800")), "LONE_SURROGATE"),
    "surrogate_in_id": (dg(crid=s(b"\\udc00")), "LONE_SURROGATE"),
    "surrogate_in_key": (dg(extra=b', "\\ud800": 1'), "LONE_SURROGATE"),
    "nested_1000_deep": (dg(value=DEEP), "TOO_DEEP"),
    "integer_5000_digits": (dg(value=BIG), "NUMBER_TOO_LARGE"),
    "id_20kb": (dg(crid=LONG), "KEY_TOO_LONG"),
}
SCHEMA_CASES = {
    "nul_in_schema": (s(b"\\u0000"), "NUL_CHARACTER"),
    "surrogate_in_schema": (s(b"\\ud800"), "LONE_SURROGATE"),
    "schema_20kb": (LONG, "SCHEMA_TOO_LONG"),
}


def _ok_entities():
    return [json.dumps(household(i, clientReferenceId=f"hh-ok-{i}")).encode() for i in (1, 2)]


def _as_json_document(bad: bytes) -> bytes:
    ok1, ok2 = _ok_entities()
    return b'{"entities": {"household": [' + ok1 + b", " + bad + b", " + ok2 + b"]}}"


def _as_ndjson(bad: bytes, schema: bytes = b'"household"') -> bytes:
    ok1, ok2 = _ok_entities()
    return (b'{"schema": "household", "data": ' + ok1 + b"}\n" + b'{"schema": ' + schema + b', "data": ' + bad
            + b"}\n" + b'{"schema": "household", "data": ' + ok2 + b"}\n")


@pytest.fixture
def digit_actor(live_app, real_sessions):
    with session_scope(real_sessions) as session:
        writer = make_user(session, role="read-write")
    return {"headers": bearer(live_app, writer), "token": token_for(live_app, writer)}


def _digit_sync(live_app, actor, worker, data: bytes, name: str) -> tuple[dict, str]:
    client = live_app.test_client()
    campaign = f"HOSTILE-{uuid.uuid4().hex[:8]}"
    resp = client.post("/filestore/v1/files", headers=actor["headers"], content_type="multipart/form-data",
                       data={"tenantId": "default", "file": (io.BytesIO(data), name)})
    assert resp.status_code == 201, resp.get_data(as_text=True)[:300]
    file_id = resp.get_json()["files"][0]["fileStoreId"]
    resp = client.post("/sync/file/v1/_create", json=envelope(
        {"campaignId": campaign, "tenantId": "default", "file": file_id}, actor["token"]))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    sync_id = resp.get_json()["sync"]["syncId"]

    def finished():
        resp = client.post("/sync/file/status/v1/_search", json=envelope(
            {"campaignId": campaign, "tenantId": "default", "syncId": sync_id}, actor["token"]))
        assert resp.status_code == 200
        sync = resp.get_json()["sync"]
        return sync if sync["status"] in ("COMPLETED", "FAILED") else None
    return wait_for(finished, 60, message=worker.tail()), campaign


def _check_digit(sync, campaign, code, real_sessions):
    assert sync["status"] == "COMPLETED", sync.get("failure")
    assert sync["counts"] == {"accepted": 2, "duplicate": 0, "rejected": 1}
    assert [(e["position"], e["code"]) for e in sync["errors"]] == [(1, code)]
    _clean(sync["errors"][0]["message"])
    with session_scope(real_sessions) as session:
        keys = {k for k in _records(session, "default", "digit") if k.startswith(campaign + ":")}
    assert keys == {f"{campaign}:household:hh-ok-1", f"{campaign}:household:hh-ok-2"}


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
@pytest.mark.parametrize("case", sorted(DIGIT_CASES))
def test_digit_sync_file_rejects_only_the_hostile_entity(case, fmt, live_worker, live_app, real_sessions,
                                                         digit_actor):
    bad, code = DIGIT_CASES[case]
    data = _as_json_document(bad) if fmt == "json" else _as_ndjson(bad)
    sync, campaign = _digit_sync(live_app, digit_actor, live_worker, data, f"sync.{fmt}")
    _check_digit(sync, campaign, code, real_sessions)


@pytest.mark.parametrize("case", sorted(SCHEMA_CASES))
def test_digit_hostile_schema_name_rejects_only_its_line(case, live_worker, live_app, real_sessions, digit_actor):
    schema, code = SCHEMA_CASES[case]
    data = _as_ndjson(dg(), schema=schema)
    sync, campaign = _digit_sync(live_app, digit_actor, live_worker, data, "sync.ndjson")
    _check_digit(sync, campaign, code, real_sessions)


# --- a bounded Synkronus answer ------------------------------------------------------------------

def test_synkronus_answer_gives_the_first_failed_records_and_counts_the_rest(live_worker, live_app, real_sessions):
    from workers.synkronus.jobs import FAILED_IN_ANSWER
    tenant = f"hostile-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as session:
        user = make_user(session, role="read-write", tenant=tenant)
    bad = FAILED_IN_ANSWER + 50
    records = [{"observation_id": f"bad-{i}", "data": "not an object"} for i in range(bad)] + [
        json.loads(ok_obs(1))]
    client = live_app.test_client()
    resp = client.post("/sync/push", json={"transmission_id": uuid.uuid4().hex, "client_id": "c1", "records": records},
                       headers=bearer(live_app, user))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    answer = resp.get_json()
    assert answer["success_count"] == 1
    assert [f["index"] for f in answer["failed_records"]] == list(range(FAILED_IN_ANSWER))
    assert answer["failed_count"] == bad
    with session_scope(real_sessions) as session:
        job = _only_job(session, tenant, "synkronus.push")
        assert answer["errors_url"] == f"/jobs/{job.id}/errors"
        assert len(job.result["failed_records"]) == FAILED_IN_ANSWER
    listed = client.get(f"{answer['errors_url']}?limit=500", headers=bearer(live_app, user)).get_json()
    assert len([e for e in listed["errors"] if e.get("severity", "error") == "error"]) == bad, listed.keys()
