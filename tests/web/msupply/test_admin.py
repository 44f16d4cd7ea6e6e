"""Admin API for sites: create (201, no password in the answer), list, get, patch, delete,
reset-hardware; admin JWT only; the tenant comes from the token."""
import uuid

import pytest

from tests.factories import bearer, make_user
from tests.web.msupply.helpers import PASSWORD, assert_error, headers


@pytest.fixture
def admin(app, session, tenant):
    return bearer(app, make_user(session, tenant=tenant, role="admin"))


def _body(**extra):
    return {"id": 4, "name": f"Satellite-{uuid.uuid4().hex[:8]}", "password": PASSWORD, "store_id": "S4",
            "name_id": "N4", "supplying_store_id": "S1", **extra}


def test_create_then_the_satellite_can_log_in(client, admin, tenant):
    body = _body()
    resp = client.post("/admin/sites", json=body, headers=admin)
    assert resp.status_code == 201
    site = resp.get_json()
    assert site["id"] == 4 and site["tenant"] == tenant and site["store_id"] == "S4"
    assert "password" not in site and "password_hash" not in site and PASSWORD not in resp.get_data(as_text=True)
    assert client.get("/sync/v3/site", headers=headers(body["name"])).get_json()["StoreID"] == "S4"


def test_validation_and_conflicts(client, admin):
    assert_error(client.post("/admin/sites", json=_body(id=1), headers=admin), 400)
    assert_error(client.post("/admin/sites", json=_body(id="4"), headers=admin), 400)
    assert_error(client.post("/admin/sites", json=_body(password=""), headers=admin), 400)
    assert_error(client.post("/admin/sites", json=_body(colour="red"), headers=admin), 400)
    body = _body()
    assert client.post("/admin/sites", json=body, headers=admin).status_code == 201
    assert_error(client.post("/admin/sites", json=_body(), headers=admin), 409)           # same id
    assert_error(client.post("/admin/sites", json=_body(id=5, name=body["name"]), headers=admin), 409)


def test_list_get_patch_delete(client, admin):
    body = _body()
    client.post("/admin/sites", json=body, headers=admin)
    assert [s["id"] for s in client.get("/admin/sites", headers=admin).get_json()["sites"]] == [4]
    assert client.get("/admin/sites/4", headers=admin).get_json()["name"] == body["name"]
    patched = client.patch("/admin/sites/4", json={"store_id": "S9", "password": "new-pw"}, headers=admin)
    assert patched.status_code == 200 and patched.get_json()["store_id"] == "S9"
    assert_error(client.get("/sync/v3/site", headers=headers(body["name"])), 401)
    assert client.get("/sync/v3/site", headers=headers(body["name"], "new-pw")).get_json()["StoreID"] == "S9"
    deleted = client.delete("/admin/sites/4", headers=admin)
    assert deleted.status_code == 200 and deleted.get_json() == {"deleted": True, "id": 4}
    assert_error(client.get("/admin/sites/4", headers=admin), 404)


def test_reset_hardware_lets_a_new_device_register(client, admin):
    body = _body()
    client.post("/admin/sites", json=body, headers=admin)
    client.get("/sync/v3/site", headers=headers(body["name"], hardware="old-phone"))
    assert client.get("/admin/sites/4", headers=admin).get_json()["hardware_id"] == "old-phone"
    assert_error(client.get("/sync/v3/site", headers=headers(body["name"], hardware="new-phone")), 409)
    assert client.post("/admin/sites/4/reset-hardware", headers=admin).get_json()["hardware_id"] is None
    assert client.get("/sync/v3/site", headers=headers(body["name"], hardware="new-phone")).status_code == 200


def test_admin_role_and_tenant_are_enforced(app, client, session, admin):
    client.post("/admin/sites", json=_body(), headers=admin)
    writer = bearer(app, make_user(session, tenant="default", role="read-write"))
    assert_error(client.get("/admin/sites", headers=writer), 403)
    assert_error(client.get("/admin/sites"), 401)
    other_admin = bearer(app, make_user(session, tenant=f"x-{uuid.uuid4().hex[:6]}", role="admin"))
    assert_error(client.get("/admin/sites/4", headers=other_admin), 404)
    assert client.get("/admin/sites", headers=other_admin).get_json() == {"sites": []}
