"""Hostile input on the mSupply endpoints: a NUL or a lone surrogate, ids beyond the columns' integers,
megabyte names and oversize batches answer a 4xx in mSupply's shape ({"error": text} on /sync/,
{"error", "message"} on /admin/sites), never a 5xx; one odd record never fails its batch."""
import json

import pytest

from models.tables import Job
from tests.factories import bearer, make_user
from tests.web.msupply.helpers import assert_error, headers, make_site, route, uid

MEGABYTE = "n" * (1024 * 1024)


@pytest.fixture
def site(session, tenant):
    return make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")


@pytest.fixture
def admin(app, session, tenant):
    return bearer(app, make_user(session, tenant=tenant, role="admin"))


def _sync_error(response, status=400):
    body = assert_error(response, status)
    assert set(body) == {"error"}, body
    return body


def test_pull_by_a_sync_id_with_nul_is_400(client, site):
    _sync_error(client.get(f"/sync/v3/queued_records?{route(4)}&sync_id=%00", headers=headers(site.name)))
    _sync_error(client.get(f"/sync/v3/queued_records?{route(4)}&sync_id={'s' * 100_000}", headers=headers(site.name)))


@pytest.mark.parametrize("body", [b'{"SyncRecordIDs": ["a\\u0000b"]}', b'["\\ud800"]',
                                  b'{"SyncRecordIDs": ["' + b"s" * 100_000 + b'"]}'])
def test_acknowledging_an_unstorable_id_is_400(client, site, body):
    _sync_error(client.post(f"/sync/v3/acknowledged_records?{route(4)}", data=body, content_type="application/json",
                            headers=headers(site.name)))


def test_v4_with_nul_is_400(client, site):
    _sync_error(client.post("/api/v4/name_store_join", data=b'{"name_ID": "a\\u0000", "store_ID": "STORE_A"}',
                            content_type="application/json", headers=headers(site.name)))
    _sync_error(client.post("/sync/v4/name_store_join", data=b'{"name_ID": "N", "store_ID": "\\ud800"}',
                            content_type="application/json", headers=headers(site.name)))
    _sync_error(client.get("/api/v4/patient_history?id=a%00b", headers=headers(site.name)))


@pytest.mark.parametrize("change", [{"name": "Sat\x00ellite"}, {"name": MEGABYTE}, {"id": 2 ** 40},
                                    {"store_id": "S\x00"}, {"password": "\ud800"}, {"id": 2 ** 63}])
def test_admin_sites_refuse_unstorable_fields_with_400(client, admin, change):
    body = {"id": 7, "name": f"Sat-{uid()[:8]}", "password": "pw", **change}
    resp = client.post("/admin/sites", data=json.dumps(body).encode(), content_type="application/json",
                       headers=admin)
    out = assert_error(resp, 400)
    assert isinstance(out.get("message"), str) and MEGABYTE[:1000] not in resp.get_data(as_text=True)


def test_a_push_over_max_records_per_push_is_413(client, site, session, tenant, settings):
    cap = settings.max_records_per_push
    assert cap == 10_000  # the documented default
    resp = client.post(f"/sync/v3/queued_records?{route(4)}", data=b"[" + b"{}," * cap + b"{}]",
                       content_type="application/json", headers=headers(site.name))
    body = _sync_error(resp, 413)
    assert str(cap) in body["error"]
    assert session.query(Job).filter(Job.tenant_id == tenant).count() == 0


@pytest.mark.parametrize("odd", [b'"a\\ud800b"', b"[" * 600 + b"]" * 600], ids=["lone_surrogate", "deep_600"])
def test_one_record_holding_what_orjson_cannot_write_keeps_its_batch(client, site, session, tenant, odd):
    good = {"SyncID": uid(), "RecordType": "item", "RecordID": uid(), "SyncType": "I", "StoreID": "STORE_A",
            "Data": {"code": "A"}}
    odd_record = b'{"SyncID": "' + uid().encode() + b'", "RecordType": "item", "RecordID": "R1", "SyncType": "I", ' \
        b'"Data": {"code": ' + odd + b"}}"
    raw = b"[" + json.dumps(good).encode() + b", " + odd_record + b"]"
    resp = client.post(f"/sync/v3/queued_records?{route(4)}", data=raw, content_type="application/json",
                       headers=headers(site.name))
    assert resp.status_code == 200 and resp.get_json() == {}, resp.get_data(as_text=True)
    (job,) = session.query(Job).filter(Job.tenant_id == tenant, Job.kind == "msupply.push").all()
    assert job.progress_total == 2


def test_a_v1_record_with_a_list_for_a_field_number_keeps_its_batch(client, site, session, tenant):
    record = {"SyncID": uid(), "TableNumber": 1, "RecordID": uid(), "SyncType": "I", "StoreID": "STORE_A",
              "fields": [[1], {"a": 2}, 3], "values": ["x", "y", "z"]}
    resp = client.post(f"/sync/v1/queued_records?{route(4)}", json=[record],
                       headers=headers(site.name, hashed=False))
    assert resp.status_code == 200 and resp.get_json() == {}, resp.get_data(as_text=True)


@pytest.mark.parametrize("hardware", ["dev\x00ice", "d" * 100_000], ids=["nul", "100KB"])
def test_a_hardware_id_that_cannot_be_stored_is_400_and_binds_nothing(client, session, tenant, hardware):
    site = make_site(session, tenant=tenant, site_id=5, store_id="STORE_B")
    _sync_error(client.get(f"/sync/v3/queued_records/count?{route(5)}", headers=headers(site.name, hardware=hardware)))
    resp = client.get(f"/sync/v3/queued_records/count?{route(5)}", headers=headers(site.name, hardware="device-9"))
    assert resp.status_code == 200, resp.get_data(as_text=True)  # the site is still free to bind
