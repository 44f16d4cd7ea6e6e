"""v4 endpoints under /sync/v4 and /api/v4: name_store_join and patient_history."""
import pytest

from tests.web.msupply.helpers import assert_error, headers, make_site, put, route


@pytest.fixture
def sites(session, tenant):
    a = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    b = make_site(session, tenant=tenant, site_id=5, store_id="STORE_A")
    return a, b


@pytest.mark.parametrize("prefix", ["/api/v4", "/sync/v4"])
def test_name_store_join_creates_a_join_that_reaches_the_other_sites_of_the_store(client, session, tenant, sites,
                                                                                    prefix):
    a, b = sites
    put(session, tenant, [("name", "P1", {"ID": "P1"}), ("store", "STORE_A", {"ID": "STORE_A"})])
    resp = client.post(f"{prefix}/name_store_join", json={"name_ID": "P1", "store_ID": "STORE_A"},
                       headers=headers(a.name))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["name_ID"] == "P1" and body["store_ID"] == "STORE_A" and body["inactive"] is False
    assert len(body["ID"]) == 32
    again = client.post(f"{prefix}/name_store_join", json={"name_ID": "P1", "store_ID": "STORE_A"},
                        headers=headers(a.name)).get_json()
    assert again["ID"] == body["ID"]
    pulled = client.get(f"/sync/v3/queued_records?{route(5, limit=50)}", headers=headers(b.name)).get_json()
    assert [r["RecordID"] for r in pulled if r["RecordType"] == "name_store_join"] == [body["ID"]]
    mine = client.get(f"/sync/v3/queued_records?{route(4, limit=50)}", headers=headers(a.name)).get_json()
    assert [r for r in mine if r["RecordType"] == "name_store_join"] == []


def test_name_store_join_refuses_missing_or_unknown_ids(client, session, tenant, sites):
    a, _ = sites
    put(session, tenant, [("name", "P1", {"ID": "P1"})])
    h = headers(a.name)
    assert_error(client.post("/api/v4/name_store_join", json={"name_ID": "P1"}, headers=h), 400)
    assert_error(client.post("/api/v4/name_store_join", json={"name_ID": "P1", "store_ID": "NOPE"}, headers=h), 400)
    assert_error(client.post("/api/v4/name_store_join", json={"name_ID": "P1", "store_ID": "S"},
                             headers=headers(a.name, "wrong")), 401)


def test_patient_history_is_built_from_stored_records(client, session, tenant, sites):
    a, _ = sites
    put(session, tenant, [
        ("store", "STORE_A", {"ID": "STORE_A", "name": "Hogwarts Dispensary"}),
        ("item", "AMOX", {"ID": "AMOX", "item_name": "Amoxicillin 250mg tabs", "code": "030453", "doses": "0",
                          "is_vaccine": "false"}),
        ("item", "VAX", {"ID": "VAX", "item_name": "Pfizer", "code": "C19PB", "doses": "6", "is_vaccine": "true"}),
        ("item_line", "IL_VAX", {"ID": "IL_VAX", "item_ID": "VAX"}),
        ("clinician", "C1", {"ID": "C1", "first_name": "Mel", "last_name": "Bale"}),
        ("medicine_administrator", "MA", {"ID": "MA", "first_name": "Ann", "last_name": "Nurse"}),
        ("transact", "T2", {"ID": "T2", "name_ID": "PAT", "store_ID": "STORE_A", "type": "ci",
                            "confirm_date": "2021-05-07T00:00:00", "clinician_ID": "C1"}),
        ("transact", "T1", {"ID": "T1", "name_ID": "PAT", "store_ID": "STORE_A", "type": "ci",
                            "confirm_date": "2019-02-22"}),
        ("transact", "T_OTHER", {"ID": "T_OTHER", "name_ID": "SOMEONE", "store_ID": "STORE_A", "type": "ci"}),
        ("trans_line", "L1", {"ID": "L1", "transaction_ID": "T1", "item_ID": "AMOX", "quantity": "5",
                              "item_name": "Amoxicillin 250mg tabs"}),
        ("trans_line", "L2", {"ID": "L2", "transaction_ID": "T2", "item_line_ID": "IL_VAX", "quantity": "0.5",
                              "item_name": "Pfizer", "medicine_administrator_ID": "MA"}),
    ])
    resp = client.get("/api/v4/patient_history?id=PAT", headers=headers(a.name))
    assert resp.status_code == 200
    assert resp.get_json() == [
        {"confirm_date": "2019-02-22", "store": {"name": "Hogwarts Dispensary"}, "transLines": [
            {"ID": "L1", "item_name": "Amoxicillin 250mg tabs", "quantity": 5,
             "itemLine": {"item": {"code": "030453", "doses": 0, "is_vaccine": False}}}]},
        {"confirm_date": "2021-05-07", "store": {"name": "Hogwarts Dispensary"},
         "clinician": {"first_name": "Mel", "last_name": "Bale"}, "transLines": [
            {"ID": "L2", "item_name": "Pfizer", "quantity": 0.5,
             "itemLine": {"item": {"code": "C19PB", "doses": 6, "is_vaccine": True}},
             "medicineAdministrator": {"first_name": "Ann", "last_name": "Nurse"}}]},
    ]
    assert client.get("/sync/v4/patient_history?id=NOBODY", headers=headers(a.name)).get_json() == []
    assert_error(client.get("/api/v4/patient_history?id=PAT", headers=headers(a.name, "bad")), 401)
