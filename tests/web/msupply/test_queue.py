"""Site queues: fan-out by store and record type, dedupe, tombstones, no echo, and the pull / ack
endpoints in their v1 and v3 shapes."""
from models.msupply import store as msupply
from tests.web.msupply.helpers import assert_error, headers, make_site, put, route, uid


def _pull(client, site, limit=500, version=3):
    resp = client.get(f"/sync/v{version}/queued_records?{route(site.site_id, limit=limit)}", headers=headers(site.name))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def _count(client, site):
    return client.get(f"/sync/v3/queued_records/count?{route(site.site_id)}",
                      headers=headers(site.name)).get_json()["NumRecords"]


def _two_sites(session, tenant):
    a = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A", name_id="NAME_A")
    b = make_site(session, tenant=tenant, site_id=5, store_id="STORE_B", name_id="NAME_B")
    return a, b


def test_master_data_reaches_every_site_store_data_only_its_store(client, session, tenant):
    a, b = _two_sites(session, tenant)
    put(session, tenant, [
        ("item", "I1", {"ID": "I1", "item_name": "Amoxicillin"}),
        ("transact", "T_A", {"ID": "T_A", "store_ID": "STORE_A", "name_ID": "CUSTOMER"}),
        ("trans_line", "L_A", {"ID": "L_A", "transaction_ID": "T_A"}, "STORE_A"),
        ("transact", "T_B", {"ID": "T_B", "store_ID": "STORE_B", "name_ID": "CUSTOMER"}),
        ("store", "STORE_A", {"ID": "STORE_A", "name": "A"}),
    ])
    assert sorted(r["RecordID"] for r in _pull(client, a)) == ["I1", "L_A", "STORE_A", "T_A"]
    assert sorted(r["RecordID"] for r in _pull(client, b)) == ["I1", "T_B"]


def test_a_transfer_reaches_the_receiving_store(client, session, tenant):
    a, b = _two_sites(session, tenant)
    put(session, tenant, [("transact", "T_AB", {"ID": "T_AB", "store_ID": "STORE_A", "name_ID": "NAME_B"})])
    assert [r["RecordID"] for r in _pull(client, a)] == ["T_AB"]
    assert [r["RecordID"] for r in _pull(client, b)] == ["T_AB"]


def test_pull_shape_is_v3_with_lowercase_data_and_every_key(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", "I1", {"ID": "I1", "item_name": "Paracetamol", "code": "P1"})])
    (record,) = _pull(client, a)
    assert set(record) == {"SyncID", "RecordType", "RecordID", "SyncType", "StoreID", "KeyFieldID",
                           "mergeIDtokeep", "mergeIDtodelete", "data"}
    assert record["RecordType"] == "item" and record["SyncType"] == "I" and record["StoreID"] == ""
    assert record["data"] == {"ID": "I1", "item_name": "Paracetamol", "code": "P1"}
    assert isinstance(record["KeyFieldID"], int) and len(record["SyncID"]) == 32


def test_default_limit_is_one_pull_is_not_destructive_and_ack_removes(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", f"I{i}", {"ID": f"I{i}"}) for i in range(5)])
    h = headers(a.name)
    first = client.get(f"/sync/v3/queued_records?{route(4)}", headers=h).get_json()
    assert [r["RecordID"] for r in first] == ["I0"]
    assert client.get(f"/sync/v3/queued_records?{route(4)}", headers=h).get_json() == first
    batch = _pull(client, a, limit=3)
    assert [r["RecordID"] for r in batch] == ["I0", "I1", "I2"]
    ack = client.post(f"/sync/v3/acknowledged_records?{route(4)}", json={"SyncRecordIDs": [r["SyncID"] for r in batch]},
                      headers=h)
    assert ack.status_code == 200 and "error" not in ack.get_json()
    assert _count(client, a) == 2
    # idempotent: the same ack again, and unknown ids, change nothing and still answer JSON
    again = client.post(f"/sync/v3/acknowledged_records?{route(4)}",
                        json={"SyncRecordIDs": [batch[0]["SyncID"], "UNKNOWN"]}, headers=h)
    assert again.status_code == 200 and "error" not in again.get_json()
    assert _count(client, a) == 2


def test_ack_out_of_order_with_repeats_and_unknown_ids_removes_exactly_those_named(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", f"I{i}", {"ID": f"I{i}"}) for i in range(8)])
    ids = [r["SyncID"] for r in _pull(client, a)]
    h = headers(a.name)
    # the last two, the first one twice and an unknown id: the head window of four holds only the first
    ack = client.post(f"/sync/v3/acknowledged_records?{route(4)}", headers=h,
                      json={"SyncRecordIDs": [ids[7], ids[0], ids[6], ids[0], "UNKNOWN"]})
    assert ack.status_code == 200 and ack.get_json() == {"acknowledged": 3}
    assert [r["SyncID"] for r in _pull(client, a)] == ids[1:6]
    assert _pulled_version(session, tenant, a) == msupply.received_up_to(session, tenant, 4)
    ack = client.post(f"/sync/v3/acknowledged_records?{route(4)}", headers=h, json={"SyncRecordIDs": ids[1:3]})
    assert ack.get_json() == {"acknowledged": 2}
    assert [r["SyncID"] for r in _pull(client, a)] == ids[3:6]
    assert _pulled_version(session, tenant, a) == msupply.received_up_to(session, tenant, 4)


def _pulled_version(session, tenant, site):
    from models.devices import Device
    session.expire_all()
    return session.get(Device, (tenant, "msupply", site.name)).last_pulled_version


def test_ack_accepts_a_bare_array_and_the_legacy_form(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", f"I{i}", {"ID": f"I{i}"}) for i in range(3)])
    ids = [r["SyncID"] for r in _pull(client, a)]
    h = headers(a.name)
    assert client.post(f"/sync/v3/acknowledged_records?{route(4)}", json=[ids[0]], headers=h).status_code == 200
    assert client.post(f"/sync/v3/acknowledged_records?{route(4)}",
                       json={"acknowledged_records": {"ItemFields": [ids[1]]}}, headers=h).status_code == 200
    assert [r["SyncID"] for r in _pull(client, a)] == [ids[2]]
    assert_error(client.post(f"/sync/v3/acknowledged_records?{route(4)}", json={"nope": 1}, headers=h), 400)


def test_sync_id_fetch_returns_an_array_of_zero_or_one(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", "I1", {"ID": "I1"}), ("item", "I2", {"ID": "I2"})])
    second = _pull(client, a)[1]
    h = headers(a.name)
    got = client.get(f"/sync/v3/queued_records?{route(4, sync_id=second['SyncID'])}", headers=h).get_json()
    assert got == [second]
    assert client.get(f"/sync/v3/queued_records?{route(4, sync_id='NOPE')}", headers=h).get_json() == []


def test_limit_is_validated_and_capped(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    h = headers(a.name)
    assert_error(client.get(f"/sync/v3/queued_records?{route(4, limit='x')}", headers=h), 400)
    assert_error(client.get(f"/sync/v3/queued_records?{route(4, limit=0)}", headers=h), 400)
    assert client.get(f"/sync/v3/queued_records?{route(4, limit=100000)}", headers=h).get_json() == []


def test_newer_change_replaces_the_queued_entry_with_a_new_sync_id(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", "I1", {"ID": "I1", "item_name": "old"}), ("item", "I2", {"ID": "I2"})])
    old = _pull(client, a)
    put(session, tenant, [("item", "I1", {"ID": "I1", "item_name": "new"})])
    new = _pull(client, a)
    assert len(new) == 2 and new[0]["RecordID"] == "I2"  # the replaced entry moved to the tail
    assert new[1]["RecordID"] == "I1" and new[1]["data"]["item_name"] == "new" and new[1]["SyncType"] == "U"
    assert new[1]["SyncID"] != old[0]["SyncID"]
    # acknowledging the old SyncID (a batch fetched before the change) does not drop the newer change
    client.post(f"/sync/v3/acknowledged_records?{route(4)}", json={"SyncRecordIDs": [old[0]["SyncID"]]},
                headers=headers(a.name))
    assert [r["RecordID"] for r in _pull(client, a)] == ["I2", "I1"]


def test_a_delete_replaces_earlier_entries_with_a_tombstone(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("transact", "T1", {"ID": "T1", "store_ID": "STORE_A"})])
    put(session, tenant, [("transact", "T1", None, "STORE_A")])
    (record,) = _pull(client, a)
    assert record["SyncType"] == "D" and record["RecordID"] == "T1" and record["data"] == {}
    assert record["StoreID"] == "STORE_A"


def test_a_site_never_gets_its_own_change_back(client, session, tenant):
    a, b = _two_sites(session, tenant)
    put(session, tenant, [("item", "I1", {"ID": "I1"})], origin=msupply.site_origin(4))
    assert _pull(client, a) == []
    assert [r["RecordID"] for r in _pull(client, b)] == ["I1"]


def test_other_namespaces_are_not_fanned_out(client, session, tenant):
    from models.engine import Incoming, apply_chunk
    a, _ = _two_sites(session, tenant)
    apply_chunk(session, tenant_id=tenant, namespace="synkronus", records=[
        Incoming(position=0, key="obs-1", record_type="item", data={"ID": "x"})])
    session.commit()
    assert _count(client, a) == 0


def test_other_tenants_sites_get_nothing(client, session, tenant):
    from models.users import ensure_tenant
    a, _ = _two_sites(session, tenant)
    other = f"o-{uid()[:8]}"
    ensure_tenant(session, other)
    c = make_site(session, tenant=other, site_id=4, store_id="STORE_A")
    put(session, tenant, [("item", "I1", {"ID": "I1"})])
    assert _count(client, a) == 1 and _count(client, c) == 0


def test_v1_pull_uses_table_and_field_numbers(client, session, tenant):
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("trans_line", "L1", {"ID": "L1", "transaction_ID": "T1", "quantity": 12,
                                                "not_in_the_map": "x"}, "STORE_A")])
    (record,) = _pull(client, a, version=1)
    assert record["TableNumber"] == 6 and record["KeyFieldID"] == 1 and record["RecordID"] == "L1"
    assert dict(zip(record["fields"], record["values"])) == {1: "L1", 2: "T1", 6: "12"}
    assert "data" not in record


def test_the_v3_page_has_the_installations_key_fields_deletes_without_data_and_merges(
        settings, isolated_sessions, broker, redis_client, session, tenant, tmp_path):
    """The page is rendered by PostgreSQL: KeyFieldID from the installation's v1 map (1 where it names
    none), `data` {} for a delete, a merge naming the kept record, in queue order."""
    import json
    from web.app import create_app
    from web.msupply import v1map
    spec = json.loads(v1map.DEFAULT_MAP.read_text())
    item = next(k for k, t in spec["tables"].items() if t["name"] == "item")
    spec["tables"][item]["key_field"] = 7
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(spec))
    app = create_app(settings.replace(options={"msupply": {"v1_map_file": str(path)}}),
                     session_factory=isolated_sessions, celery_app=broker, redis_client=redis_client)
    client = app.test_client()
    a, _ = _two_sites(session, tenant)
    put(session, tenant, [("item", "I1", {"ID": "I1", "item_name": "A"}), ("name", "N1", {"ID": "N1"}),
                          ("item", "I2", {"ID": "I2"})])
    put(session, tenant, [("item", "I2", None)])
    assert client.get(f"/sync/v3/queued_records?{route(4, limit=10)}", headers=headers(a.name)).get_json() == [
        {"SyncID": msupply_sync_id(session, tenant, 4, "item:I1"), "RecordType": "item", "RecordID": "I1",
         "SyncType": "I", "StoreID": "", "KeyFieldID": 7, "mergeIDtokeep": "", "mergeIDtodelete": "",
         "data": {"ID": "I1", "item_name": "A"}},
        {"SyncID": msupply_sync_id(session, tenant, 4, "name:N1"), "RecordType": "name", "RecordID": "N1",
         "SyncType": "I", "StoreID": "", "KeyFieldID": 1, "mergeIDtokeep": "", "mergeIDtodelete": "",
         "data": {"ID": "N1"}},
        {"SyncID": msupply_sync_id(session, tenant, 4, "item:I2"), "RecordType": "item", "RecordID": "I2",
         "SyncType": "D", "StoreID": "", "KeyFieldID": 7, "mergeIDtokeep": "", "mergeIDtodelete": "",
         "data": {}},
    ]
    one = client.get(f"/sync/v3/queued_records?{route(4, sync_id=msupply_sync_id(session, tenant, 4, 'name:N1'))}",
                     headers=headers(a.name)).get_json()
    assert [r["RecordID"] for r in one] == ["N1"]
    assert client.get(f"/sync/v3/queued_records?{route(4, sync_id='nope')}", headers=headers(a.name)).get_json() == []


def msupply_sync_id(session, tenant, site_id, key):
    from sqlalchemy import text
    return session.execute(text("SELECT sync_id FROM msupply_queue WHERE tenant_id = :t AND site_id = :s "
                                "AND record_key = :k"), {"t": tenant, "s": site_id, "k": key}).scalar_one()
