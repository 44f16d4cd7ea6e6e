"""fieldsync's own user administration (/admin/users): an admin manages its tenant subtree, a system
user is invisible to other admins, bodies are checked by marshmallow at the edge (400 `invalid <fields>`
with a `fields` map, never the values sent), and the guard rails hold (own role, self, last system admin)."""
from __future__ import annotations

import uuid

import pytest

from tests.factories import bearer, make_user


def _name(prefix="u"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tenant():
    return f"region-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def admin(app, db_session, tenant):
    user = make_user(db_session, role="admin", tenant=tenant)
    return user, bearer(app, user)


def test_create_list_get_patch_delete(client, admin, tenant, app):
    _, auth = admin
    name = _name()
    r = client.post("/admin/users", json={"username": name, "password": "long-enough-1", "role": "read-write",
                                         "tenant": f"{tenant}.district"}, headers=auth)
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    assert made["username"] == name and made["tenant"] == f"{tenant}.district" and made["role"] == "read-write"
    assert "password" not in made and "long-enough-1" not in r.get_data(as_text=True)
    assert r.headers["Location"] == f"/admin/users/{name}"
    assert name in [u["username"] for u in client.get("/admin/users", headers=auth).get_json()["users"]]
    assert client.get(f"/admin/users/{name}", headers=auth).get_json()["id"] == made["id"]

    # the new user signs in with the password it was given, and loses its token when it changes
    login = client.post("/auth/login", json={"username": name, "password": "long-enough-1"})
    assert login.status_code == 200
    old = {"Authorization": f"Bearer {login.get_json()['token']}"}
    assert client.get("/jobs/" + str(uuid.uuid4()), headers=old).status_code == 404
    r = client.patch(f"/admin/users/{name}", json={"password": "another-long-1", "role": "read-only"}, headers=auth)
    assert r.status_code == 200 and r.get_json()["role"] == "read-only"
    assert client.get("/jobs/" + str(uuid.uuid4()), headers=old).status_code == 401
    assert client.post("/auth/login", json={"username": name, "password": "another-long-1"}).status_code == 200

    assert client.post("/admin/users", json={"username": name, "password": "long-enough-1", "role": "admin"},
                       headers=auth).status_code == 409
    r = client.delete(f"/admin/users/{name}", headers=auth)
    assert r.status_code == 200 and r.get_json() == {"deleted": True, "username": name}
    assert client.get(f"/admin/users/{name}", headers=auth).status_code == 404


@pytest.mark.parametrize("body, named", [
    ({"password": "long-enough-1", "role": "admin"}, "username"),
    ({"username": "a b", "password": "long-enough-1", "role": "admin"}, "username"),
    ({"username": "x\x00y", "password": "long-enough-1", "role": "admin"}, "username"),
    ({"username": "ok", "password": "short", "role": "admin"}, "password"),
    ({"username": "ok", "password": "long-enough-1", "role": "root"}, "role"),
    ({"username": "ok", "password": "long-enough-1", "role": 7}, "role"),
    ({"username": "ok", "password": "\ud800" * 9, "role": "admin"}, "password"),
    ({"username": "ok", "password": "long-enough-1", "role": "admin", "colour": "red"}, "colour"),
])
def test_bad_bodies_name_their_fields_and_never_echo_values(client, admin, body, named):
    _, auth = admin
    r = client.post("/admin/users", json=body, headers=auth)
    assert r.status_code == 400
    out = r.get_json()
    assert out["error"] == "invalid_user" and out["message"].startswith("invalid ") and named in out["message"]
    assert named in out["fields"]
    assert "long-enough-1" not in r.get_data(as_text=True) and '"red"' not in r.get_data(as_text=True)


def test_a_long_or_unstorable_unknown_key_is_counted_not_repeated(client, admin):
    _, auth = admin
    body = {"username": "ok", "password": "long-enough-1", "role": "admin", "k" * 5000: 1, "a\x00": 2}
    r = client.post("/admin/users", json=body, headers=auth)
    assert r.status_code == 400 and "2 with a long or invalid name" in r.get_json()["message"]
    assert "k" * 100 not in r.get_data(as_text=True)


def test_scope_roles_and_guard_rails(client, app, db_session, admin, tenant):
    me, auth = admin
    other_tenant = make_user(db_session, role="read-write", tenant=f"elsewhere-{uuid.uuid4().hex[:6]}")
    system = make_user(db_session, role="admin", is_system=True)
    listed = {u["username"] for u in client.get("/admin/users", headers=auth).get_json()["users"]}
    assert me.username in listed and other_tenant.username not in listed and system.username not in listed
    for user in (other_tenant, system):
        assert client.get(f"/admin/users/{user.username}", headers=auth).status_code == 404
        assert client.patch(f"/admin/users/{user.username}", json={"role": "read-only"}, headers=auth).status_code == 404
        assert client.delete(f"/admin/users/{user.username}", headers=auth).status_code == 404
    # a tenant outside the subtree is refused
    r = client.post("/admin/users", json={"username": _name(), "password": "long-enough-1", "role": "read-only",
                                          "tenant": "elsewhere"}, headers=auth)
    assert r.status_code == 403
    assert client.patch(f"/admin/users/{me.username}", json={"role": "read-only"}, headers=auth).status_code == 409
    assert client.delete(f"/admin/users/{me.username}", headers=auth).status_code == 409
    assert client.patch(f"/admin/users/{me.username}", json={}, headers=auth).status_code == 400
    writer = bearer(app, make_user(db_session, role="read-write", tenant=tenant))
    assert client.get("/admin/users", headers=writer).status_code == 403
    assert client.get("/admin/users").status_code == 401
    # the system admin sees everyone, and the last system admin stays
    root = bearer(app, system)
    everyone = {u["username"] for u in client.get("/admin/users", headers=root).get_json()["users"]}
    assert {me.username, other_tenant.username, system.username} <= everyone


def test_the_admin_apis_are_described_with_their_schemas(client):
    spec = client.get("/openapi.json").get_json()
    for path in ("/admin/users", "/admin/users/{username}", "/admin/sites", "/admin/sites/{site_id}",
                 "/admin/sites/{site_id}/reset-hardware", "/admin/forms"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert schemas["UserIn"]["properties"]["role"]["enum"] == ["read-only", "read-write", "admin", "analyst"]
    assert set(schemas["UserIn"]["required"]) == {"username", "password", "role"}
    assert schemas["SiteIn"]["properties"]["id"]["maximum"] == 2 ** 31 - 1
    assert set(schemas["FormIn"]["required"]) >= {"tenantId", "campaignId", "schema", "version"}
    body = spec["paths"]["/admin/sites"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SiteIn"}
