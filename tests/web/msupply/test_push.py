"""Push (POST queued_records): stored durably as one job keyed by its SyncIDs, answered with {}; the
job (run here in-process on the test transaction) applies through the engine and fans out."""
import pytest

from models.tables import Job
from tests.factories import bearer, make_user
from tests.web.msupply.helpers import assert_error, headers, make_site, route, uid


@pytest.fixture
def runtime(settings, isolated_sessions):
    from workers.runtime import Runtime
    return Runtime(settings, isolated_sessions)


def _jobs(session, tenant):
    session.expire_all()
    return session.query(Job).filter(Job.tenant_id == tenant, Job.kind == "msupply.push").all()


def _records(store="STORE_A"):
    t = uid()
    return [
        {"SyncID": uid(), "RecordType": "transact", "RecordID": t, "SyncType": "I", "StoreID": store,
         "Data": {"ID": t, "store_ID": store, "name_ID": "CUST", "type": "ci"}},
        {"SyncID": uid(), "RecordType": "trans_line", "RecordID": uid(), "SyncType": "I", "StoreID": store,
         "Data": {"ID": "L", "transaction_ID": t, "quantity": "5"}},
    ]


def test_push_stores_one_job_and_answers_an_empty_object(client, broker, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    resp = client.post(f"/sync/v3/queued_records?{route(4)}", json=_records(), headers=headers(site.name))
    assert resp.status_code == 200 and resp.get_json() == {}
    (job,) = _jobs(session, tenant)
    assert job.status == "QUEUED" and job.params["site_id"] == 4 and job.progress_total == 2
    assert [s[1] for s in broker.sent] == [[str(job.id)]]


def test_a_resent_push_is_the_same_job(client, broker, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    records = _records()
    for _ in range(2):
        assert client.post(f"/sync/v3/queued_records?{route(4)}", json=records,
                           headers=headers(site.name)).get_json() == {}
    assert len(_jobs(session, tenant)) == 1 and len(broker.sent) == 1


def test_empty_push_answers_without_a_job(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    assert client.post(f"/sync/v3/queued_records?{route(4)}", json=[], headers=headers(site.name)).get_json() == {}
    assert _jobs(session, tenant) == []


def test_the_job_applies_fans_out_and_reports_bad_records(app, client, session, tenant, runtime):
    from workers.runner import run_job
    pusher = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    peer = make_site(session, tenant=tenant, site_id=6, store_id="STORE_A")
    records = _records() + [
        {"SyncID": uid(), "RecordType": "transact", "RecordID": uid(), "SyncType": "X", "Data": {}},
        {"SyncID": uid(), "RecordType": "item", "RecordID": uid(), "SyncType": "U"},
    ]
    client.post(f"/sync/v3/queued_records?{route(4)}", json=records, headers=headers(pusher.name))
    (job,) = _jobs(session, tenant)
    assert run_job(runtime, job.id) == "completed"
    (job,) = _jobs(session, tenant)
    assert job.status == "COMPLETED" and job.counts["accepted"] == 2 and job.counts["rejected"] == 2
    pulled = client.get(f"/sync/v3/queued_records?{route(6, limit=10)}", headers=headers(peer.name)).get_json()
    assert [r["RecordType"] for r in pulled] == ["transact", "trans_line"]
    assert client.get(f"/sync/v3/queued_records/count?{route(4)}",
                      headers=headers(pusher.name)).get_json() == {"NumRecords": 0}
    admin = make_user(session, tenant=tenant, role="admin")
    errors = client.get(f"/jobs/{job.id}/errors", headers=bearer(app, admin)).get_json()["errors"]
    assert [(e["position"], e["code"]) for e in errors] == [(2, "invalid_sync_type"), (3, "missing_data")]


def test_a_sync_id_pushed_before_is_not_applied_again(client, session, tenant, runtime):
    from models.engine import get_record
    from workers.runner import run_job
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    first = _records()
    client.post(f"/sync/v3/queued_records?{route(4)}", json=first, headers=headers(site.name))
    run_job(runtime, _jobs(session, tenant)[0].id)
    # a central edit changes the transaction; then the old push arrives again inside a bigger batch
    from tests.web.msupply.helpers import put
    tid = first[0]["RecordID"]
    put(session, tenant, [("transact", tid, {"ID": tid, "store_ID": "STORE_A", "comment": "central"})])
    client.post(f"/sync/v3/queued_records?{route(4)}", json=first + _records(), headers=headers(site.name))
    second = [j for j in _jobs(session, tenant) if j.status == "QUEUED"][0]
    run_job(runtime, second.id)
    session.expire_all()
    assert session.get(Job, second.id).result["already_pushed"] == 2
    row = get_record(session, tenant_id=tenant, namespace="msupply", key=f"transact:{tid}")
    assert '"central"' in row.data_text


def test_merge_tombstones_the_removed_record_repoints_references_and_queues_the_merge(client, session, tenant,
                                                                                       runtime):
    from models.engine import get_record
    from tests.web.msupply.helpers import put
    from workers.runner import run_job
    pusher = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    peer = make_site(session, tenant=tenant, site_id=5, store_id="STORE_B")
    put(session, tenant, [("name", "KEEP", {"ID": "KEEP", "name": "Ann"}), ("name", "DROP", {"ID": "DROP", "name": "Ann"}),
                          ("transact", "T1", {"ID": "T1", "store_ID": "STORE_B", "name_ID": "DROP"})])
    client.post(f"/sync/v3/acknowledged_records?{route(5)}", headers=headers(peer.name), json=[
        r["SyncID"] for r in client.get(f"/sync/v3/queued_records?{route(5, limit=10)}",
                                        headers=headers(peer.name)).get_json()])
    merge = [{"SyncID": uid(), "RecordType": "name", "RecordID": "KEEP", "SyncType": "M", "StoreID": "STORE_A",
              "mergeIDtokeep": "KEEP", "mergeIDtodelete": "DROP"}]
    client.post(f"/sync/v3/queued_records?{route(4)}", json=merge, headers=headers(pusher.name))
    assert run_job(runtime, _jobs(session, tenant)[0].id) == "completed"
    assert get_record(session, tenant_id=tenant, namespace="msupply", key="name:DROP").deleted
    assert '"KEEP"' in get_record(session, tenant_id=tenant, namespace="msupply", key="transact:T1").data_text
    pulled = client.get(f"/sync/v3/queued_records?{route(5, limit=10)}", headers=headers(peer.name)).get_json()
    by_type = {r["RecordType"]: r for r in pulled}
    assert by_type["name"]["SyncType"] == "M"
    assert (by_type["name"]["mergeIDtokeep"], by_type["name"]["mergeIDtodelete"]) == ("KEEP", "DROP")
    assert by_type["transact"]["data"]["name_ID"] == "KEEP"


def test_v1_push_converts_numbered_fields(client, session, tenant, runtime):
    from models.engine import get_record
    from workers.runner import run_job
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    records = [{"SyncID": uid(), "TableNumber": 1, "RecordID": "ITEM1", "KeyFieldID": 1, "SyncType": "I",
                "StoreID": "STORE_A", "fields": [1, 2, 3, 99], "values": ["ITEM1", "Trinity", "12", "x"]},
               {"SyncID": uid(), "TableNumber": 999, "RecordID": "R", "SyncType": "I", "fields": [], "values": []}]
    client.post(f"/sync/v1/queued_records?{route(4)}", json=records, headers=headers(site.name, hashed=False))
    (job,) = _jobs(session, tenant)
    run_job(runtime, job.id)
    row = get_record(session, tenant_id=tenant, namespace="msupply", key="item:ITEM1")
    import json
    assert json.loads(row.data_text) == {"ID": "ITEM1", "item_name": "Trinity", "code": "12", "field_99": "x"}
    session.expire_all()
    assert session.get(Job, job.id).counts["rejected"] == 1


def test_push_body_must_be_an_array(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4)
    assert_error(client.post(f"/sync/v3/queued_records?{route(4)}", json={"SyncID": "x"},
                             headers=headers(site.name)), 400)


def test_a_configured_push_wait_bounds_the_wait_for_the_job(settings, isolated_sessions, broker, redis_client,
                                                            session, tenant):
    """By default a push is answered as soon as it is stored; MSUPPLY_PUSH_WAIT_SECONDS makes the answer
    wait (bounded) for the job, which nothing runs here, so the answer comes after the wait."""
    import time
    from web.app import create_app
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    waiting = create_app(settings.replace(options={"msupply": {"push_wait_seconds": "0.6"}}),
                         session_factory=isolated_sessions, celery_app=broker, redis_client=redis_client)
    started = time.monotonic()
    resp = waiting.test_client().post(f"/sync/v3/queued_records?{route(4)}", json=_records(),
                                      headers=headers(site.name))
    assert resp.status_code == 200 and resp.get_json() == {}
    assert time.monotonic() - started >= 0.6
    (job,) = _jobs(session, tenant)
    assert job.status == "QUEUED"
