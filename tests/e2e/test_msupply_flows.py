"""The mSupply mobile client's flows, re-enacted against the web app with a real Celery worker,
PostgreSQL and Redis. Data is committed, so every test uses its own tenant and site names."""
import threading
import uuid

import pytest

from models.msupply import store as msupply
from models.db import session_scope
from models.engine import Incoming, apply_chunk
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import wait_for
from tests.web.msupply.helpers import assert_error, headers, make_site, put, route, uid


@pytest.fixture
def tenant(real_sessions):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        ensure_tenant(s, name)
    return name


@pytest.fixture
def client(live_app):
    return live_app.test_client()


def _site(real_sessions, tenant, site_id, store, name_id=""):
    with session_scope(real_sessions) as s:
        return make_site(s, tenant=tenant, site_id=site_id, store_id=store, name_id=name_id)


def _put(real_sessions, tenant, records, origin=None):
    with session_scope(real_sessions) as s:
        put(s, tenant, records, origin)


def _count(client, site):
    resp = client.get(f"/sync/v3/queued_records/count?{route(site.site_id)}", headers=headers(site.name))
    assert resp.status_code == 200
    return resp.get_json()["NumRecords"]


def _drain(client, site, limit=500, version=3):
    """The mobile pull loop: count, get a batch, ack it, until the queue is empty."""
    got, counts = [], []
    while True:
        counts.append(_count(client, site))
        batch = client.get(f"/sync/v{version}/queued_records?{route(site.site_id, limit=limit)}",
                           headers=headers(site.name)).get_json()
        if not batch:
            return got, counts
        got.extend(batch)
        ack = client.post(f"/sync/v{version}/acknowledged_records?{route(site.site_id)}",
                          json={"SyncRecordIDs": [r["SyncID"] for r in batch]}, headers=headers(site.name))
        assert ack.status_code == 200 and "error" not in ack.get_json()


def _jobs(real_sessions, tenant, kind):
    with session_scope(real_sessions) as s:
        return [(j.id, j.status, j.counts, j.result) for j in
                s.query(Job).filter(Job.tenant_id == tenant, Job.kind == kind).all()]


def _push(client, site, records, version=3, hashed=True):
    """Push a batch; the answer comes once it is stored (before the apply), so then wait until the
    worker has applied every push job of the site, as a later pull by another site would find it."""
    resp = client.post(f"/sync/v{version}/queued_records?{route(site.site_id)}", json=records,
                       headers=headers(site.name, hashed=hashed))
    assert resp.status_code == 200 and resp.get_json() == {}, resp.get_data(as_text=True)
    sessions = client.application.extensions["fieldsync_sessions"]

    def applied():
        with session_scope(sessions) as s:
            return not s.query(Job).filter(Job.tenant_id == site.tenant_id, Job.kind == "msupply.push",
                                           Job.status.in_(("QUEUED", "RUNNING")),
                                           Job.params["site_id"].as_integer() == site.site_id).count()
    wait_for(applied, 30, interval=0.02, message="the site's push jobs to end")


def _transact(store, name_id="CUSTOMER"):
    t = uid()
    return [{"SyncID": uid(), "RecordType": "transact", "RecordID": t, "SyncType": "I", "StoreID": store,
             "Data": {"ID": t, "store_ID": store, "name_ID": name_id, "type": "ci"}},
            {"SyncID": uid(), "RecordType": "trans_line", "RecordID": uid(), "SyncType": "I", "StoreID": store,
             "Data": {"transaction_ID": t, "quantity": "3"}}]


def test_first_time_initialisation(live_worker, client, real_sessions, tenant):
    _put(real_sessions, tenant, [("item", f"I{i}", {"ID": f"I{i}", "item_name": f"item {i}"}) for i in range(1200)]
         + [("store", "STORE_A", {"ID": "STORE_A", "name": "A"}),
            ("transact", "T_A", {"ID": "T_A", "store_ID": "STORE_A"}),
            ("transact", "T_B", {"ID": "T_B", "store_ID": "STORE_B"})])
    site = _site(real_sessions, tenant, 4, "STORE_A")
    info = client.get("/sync/v3/site", headers=headers(site.name))
    assert info.status_code == 200 and info.get_json()["SiteID"] == 4
    resp = client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(site.name))
    assert resp.status_code == 200 and resp.get_json() == {}
    wait_for(lambda: all(s == "COMPLETED" for _, s, _, _ in _jobs(real_sessions, tenant, "msupply.initial_dump")),
             30, message=live_worker.tail())
    got, counts = _drain(client, site, limit=500)
    assert counts == [1202, 702, 202, 0]
    assert len(got) == 1202 and len({r["RecordID"] for r in got}) == 1202
    assert {"STORE_A", "T_A"} <= {r["RecordID"] for r in got} and "T_B" not in {r["RecordID"] for r in got}


def test_regular_sync_push_then_pull_between_two_stores(live_worker, client, real_sessions, tenant):
    a = _site(real_sessions, tenant, 4, "STORE_A", "NAME_A")
    a2 = _site(real_sessions, tenant, 5, "STORE_A")
    b = _site(real_sessions, tenant, 6, "STORE_B", "NAME_B")
    from_a = _transact("STORE_A")
    item = uid()
    from_a.append({"SyncID": uid(), "RecordType": "item", "RecordID": item, "SyncType": "I", "StoreID": "STORE_A",
                   "Data": {"ID": item, "item_name": "new item"}})
    _push(client, a, from_a)
    assert [s for _, s, _, _ in _jobs(real_sessions, tenant, "msupply.push")] == ["COMPLETED"]
    got_a2, _ = _drain(client, a2)
    assert sorted(r["RecordType"] for r in got_a2) == ["item", "trans_line", "transact"]
    got_b, _ = _drain(client, b)
    assert [r["RecordID"] for r in got_b] == [item]  # master data only
    assert _drain(client, a)[0] == []  # nothing echoed back to the pusher
    # a transfer from B to A's store reaches A
    _push(client, b, _transact("STORE_B", name_id="NAME_A"))
    got_a, _ = _drain(client, a)
    assert sorted(r["RecordType"] for r in got_a) == ["transact"]


def test_a_push_resent_after_a_lost_answer_applies_once(live_worker, client, real_sessions, tenant):
    a = _site(real_sessions, tenant, 4, "STORE_A")
    peer = _site(real_sessions, tenant, 5, "STORE_A")
    records = _transact("STORE_A")
    _push(client, a, records)
    _push(client, a, records)
    jobs = _jobs(real_sessions, tenant, "msupply.push")
    assert len(jobs) == 1 and jobs[0][1] == "COMPLETED" and jobs[0][2]["accepted"] == 2
    got, _ = _drain(client, peer)
    assert len(got) == 2
    # resent again inside a different batch: the SyncIDs are known, nothing is applied twice
    _push(client, a, records + _transact("STORE_A"))
    got, _ = _drain(client, peer)
    assert len(got) == 2
    assert max(j[3]["already_pushed"] for j in _jobs(real_sessions, tenant, "msupply.push")) == 2


def test_errors_are_json_hardware_password_and_from_site(live_worker, client, real_sessions, tenant):
    a = _site(real_sessions, tenant, 4, "STORE_A")
    assert client.get("/sync/v3/site", headers=headers(a.name, hardware="phone-1")).status_code == 200
    body = assert_error(client.get(f"/sync/v3/queued_records/count?{route(4)}",
                                   headers=headers(a.name, hardware="phone-2")), 409)
    assert body["error"].startswith("Site registration doesn't match.")
    assert_error(client.get(f"/sync/v3/queued_records/count?{route(4)}",
                            headers=headers(a.name, "wrong", hardware="phone-1")), 401)
    assert_error(client.get("/sync/v3/queued_records/count?from_site=9&to_site=1",
                            headers=headers(a.name, hardware="phone-1")), 400)
    assert_error(client.post(f"/sync/v3/queued_records?{route(4)}", data=b"not json",
                             headers={**headers(a.name, hardware="phone-1"), "Content-Type": "application/json"}), 400)


def test_v1_client_pushes_and_pulls_numbered_fields(live_worker, client, real_sessions, tenant):
    v1 = _site(real_sessions, tenant, 4, "STORE_A")
    v3 = _site(real_sessions, tenant, 5, "STORE_A")
    line_id = uid()
    _push(client, v1, [{"SyncID": uid(), "TableNumber": 6, "RecordID": line_id, "KeyFieldID": 1, "SyncType": "I",
                        "StoreID": "STORE_A", "fields": [1, 2, 6], "values": [line_id, "T9", "12"]}],
          version=1, hashed=False)
    (record,) = _drain(client, v3)[0]
    assert record["RecordType"] == "trans_line" and record["data"] == {"ID": line_id, "transaction_ID": "T9",
                                                                       "quantity": "12"}
    _push(client, v3, [{"SyncID": uid(), "RecordType": "item", "RecordID": "ITEM9", "SyncType": "I",
                        "StoreID": "STORE_A", "Data": {"ID": "ITEM9", "item_name": "Trinity", "code": "X9"}}])
    (pulled,) = _drain(client, v1, version=1)[0]
    assert pulled["TableNumber"] == 1 and pulled["RecordID"] == "ITEM9" and "data" not in pulled
    assert dict(zip(pulled["fields"], pulled["values"])) == {1: "ITEM9", 2: "Trinity", 3: "X9"}


def test_tombstones_and_merges_reach_the_queue(live_worker, client, real_sessions, tenant):
    a = _site(real_sessions, tenant, 4, "STORE_A")
    b = _site(real_sessions, tenant, 5, "STORE_A")
    records = _transact("STORE_A")
    _push(client, a, records)
    _drain(client, b)
    _push(client, a, [{"SyncID": uid(), "RecordType": "trans_line", "RecordID": records[1]["RecordID"],
                       "SyncType": "D", "StoreID": "STORE_A"}])
    (tomb,) = _drain(client, b)[0]
    assert tomb["SyncType"] == "D" and tomb["RecordID"] == records[1]["RecordID"]
    _put(real_sessions, tenant, [("name", "KEEP", {"ID": "KEEP"}), ("name", "DROP", {"ID": "DROP"})])
    _drain(client, b)
    _push(client, a, [{"SyncID": uid(), "RecordType": "name", "RecordID": "KEEP", "SyncType": "M",
                       "StoreID": "STORE_A", "mergeIDtokeep": "KEEP", "mergeIDtodelete": "DROP"}])
    (merge,) = _drain(client, b)[0]
    assert merge["SyncType"] == "M" and (merge["mergeIDtokeep"], merge["mergeIDtodelete"]) == ("KEEP", "DROP")


def test_concurrent_pushes_from_several_sites_while_a_dump_runs(live_worker, live_app, real_sessions, tenant):
    with session_scope(real_sessions) as s:
        for start in range(0, 20000, 5000):
            apply_chunk(s, tenant_id=tenant, namespace=msupply.NAMESPACE, records=[
                Incoming(position=i, key=f"item:I{i}", record_type="item", data={"ID": f"I{i}", "n": str(i)},
                         meta={"store_id": ""}) for i in range(start, start + 5000)])
            s.commit()
    dumping = _site(real_sessions, tenant, 4, "STORE_A")
    pushers = [_site(real_sessions, tenant, 10 + n, "STORE_A" if n % 2 == 0 else "STORE_B") for n in range(3)]
    client = live_app.test_client()
    assert client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(dumping.name)).get_json() == {}
    # a second dump request while the first runs does not start another
    assert client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(dumping.name)).get_json() == {}
    pushed: dict[int, list] = {site.site_id: [] for site in pushers}
    failures = []

    def pusher(site):
        try:
            c = live_app.test_client()
            for _ in range(5):
                batch = _transact(site.store_id) + [
                    {"SyncID": uid(), "RecordType": "item", "RecordID": f"I{n}", "SyncType": "U",
                     "StoreID": site.store_id, "Data": {"ID": f"I{n}", "n": f"{site.site_id}-{uid()}"}}
                    for n in range(site.site_id * 100, site.site_id * 100 + 20)]
                _push(c, site, batch)
                pushed[site.site_id].extend(batch)
        except Exception as exc:  # surfaced below; a thread's assert would otherwise be lost
            failures.append(exc)

    threads = [threading.Thread(target=pusher, args=(site,)) for site in pushers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    wait_for(lambda: all(s in ("COMPLETED",) for _, s, _, _ in
                         _jobs(real_sessions, tenant, "msupply.initial_dump") + _jobs(real_sessions, tenant,
                                                                                       "msupply.push")),
             60, message=live_worker.tail())
    assert len(_jobs(real_sessions, tenant, "msupply.initial_dump")) == 1
    got, _ = _drain(client, dumping, limit=500)
    keys = [f'{r["RecordType"]}:{r["RecordID"]}' for r in got]
    assert len(keys) == len(set(keys))  # no duplicates
    expected = {f"item:I{i}" for i in range(20000)}
    expected |= {f'{r["RecordType"]}:{r["RecordID"]}' for batch in pushed.values() for r in batch
                 if r["RecordType"] == "item" or r["StoreID"] == "STORE_A"}
    assert set(keys) == expected
    # the items the pushers changed arrive with their last pushed data
    last = {}
    for batch in pushed.values():
        for r in batch:
            if r["RecordType"] == "item":
                last[r["RecordID"]] = r["Data"]
    by_id = {r["RecordID"]: r["data"] for r in got if r["RecordType"] == "item"}
    assert all(by_id[k] == v for k, v in last.items())


def test_a_sites_pushes_apply_in_the_order_they_were_answered(settings, real_sessions, broker, redis_client,
                                                              tenant):
    """Pushes are answered before they are applied, so a site may have several push jobs queued; a
    later one started first (say, by another worker process) waits until the earlier one has applied,
    so the record both change ends with the later push's data. The jobs are run here, one per thread
    (no message reaches a worker)."""
    from web.app import create_app
    from workers.runner import run_job
    from workers.runtime import Runtime
    site = _site(real_sessions, tenant, 4, "STORE_A")
    peer = _site(real_sessions, tenant, 5, "STORE_A")
    client = create_app(settings, session_factory=real_sessions, celery_app=broker,
                        redis_client=redis_client).test_client()
    line = uid()

    def batch(quantity):
        return [{"SyncID": uid(), "RecordType": "trans_line", "RecordID": line, "SyncType": "U",
                 "StoreID": "STORE_A", "Data": {"ID": line, "quantity": quantity}}]

    for quantity in ("1", "2"):  # no worker runs: both are answered at once and stay queued
        resp = client.post(f"/sync/v3/queued_records?{route(4)}", json=batch(quantity), headers=headers(site.name))
        assert resp.status_code == 200 and resp.get_json() == {}
    with session_scope(real_sessions) as s:
        first, second = [j.id for j in s.query(Job).filter(Job.tenant_id == tenant, Job.kind == "msupply.push")
                         .order_by(Job.created_at, Job.id)]
    runtime = Runtime(settings, real_sessions)
    outcome = {}
    later = threading.Thread(target=lambda: outcome.setdefault("second", run_job(runtime, second)))
    later.start()
    later.join(1.0)
    assert later.is_alive()  # waiting for the first push to be applied
    assert [s for _, s, _, _ in _jobs(real_sessions, tenant, "msupply.push")].count("COMPLETED") == 0
    assert run_job(runtime, first) == "completed"
    later.join(30)
    assert outcome == {"second": "completed"}
    got, _ = _drain(client, peer)
    assert [(r["RecordID"], r["data"]["quantity"]) for r in got] == [(line, "2")]
