"""Synkronus user administration."""
import uuid

from tests.factories import bearer, make_user


def test_admin_creates_lists_resets_and_deletes(app, client, db_session):
    admin = make_user(db_session, role="admin")
    h = bearer(app, admin)
    r = client.post("/users/create", json={"username": "field-1", "password": "p1", "role": "read-write"}, headers=h)
    assert r.status_code == 201
    assert r.get_json()["username"] == "field-1" and r.get_json()["role"] == "read-write" and r.get_json()["createdAt"]
    assert client.post("/users", json={"username": "field-2", "password": "p2", "role": "read-only"},
                       headers=h).status_code == 201
    dup = client.post("/users/create", json={"username": "field-1", "password": "x", "role": "read-only"}, headers=h)
    assert dup.status_code == 409
    assert client.post("/users/create", json={"username": "f3", "password": "x", "role": "boss"},
                       headers=h).status_code == 400
    assert client.post("/users/create", json={"username": "f3"}, headers=h).status_code == 400
    listed = client.get("/users", headers=h).get_json()
    assert {"field-1", "field-2"} <= {u["username"] for u in listed}
    assert all({"id", "username", "role", "createdAt", "updatedAt"} <= set(u) for u in listed)
    r = client.post("/users/reset-password", json={"username": "field-1", "newPassword": "p9"}, headers=h)
    assert r.status_code == 200 and r.get_json()["message"] == "Password reset successfully"
    assert client.post("/auth/login", json={"username": "field-1", "password": "p9"}).status_code == 200
    assert client.post("/users/reset-password", json={"username": "ghost", "newPassword": "x"},
                       headers=h).status_code == 404
    assert client.delete("/users/field-1", headers=h).get_json() == {"message": "User deleted successfully"}
    assert client.delete("/users/delete/field-2", headers=h).status_code == 200
    assert client.delete("/users/delete/field-2", headers=h).status_code == 404


def test_non_admin_is_403(app, client, db_session):
    user = make_user(db_session, role="read-write")
    r = client.get("/users", headers=bearer(app, user))
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert client.post("/users/create", json={}, headers=bearer(app, user)).status_code == 403


def test_admin_of_another_tenant_cannot_touch_users(app, client, db_session):
    target = make_user(db_session, tenant="tenant-x")
    other_admin = make_user(db_session, role="admin", tenant="tenant-y")
    assert client.delete(f"/users/{target.username}", headers=bearer(app, other_admin)).status_code == 404
    names = {u["username"] for u in client.get("/users", headers=bearer(app, other_admin)).get_json()}
    assert target.username not in names


def test_change_password_checks_the_current_one(app, client, db_session):
    user = make_user(db_session, role="read-only")
    h = bearer(app, user)
    bad = client.post("/users/change-password", json={"currentPassword": "nope", "newPassword": "n"}, headers=h)
    assert bad.status_code == 401
    ok = client.post("/users/change-password", json={"currentPassword": "pw-secret", "newPassword": "n2"}, headers=h)
    assert ok.status_code == 200 and ok.get_json() == {"message": "Password changed successfully"}
    assert client.post("/auth/login", json={"username": user.username, "password": "n2"}).status_code == 200


def test_api_versions_and_version_header(app, client, db_session):
    user = make_user(db_session, role="read-only")
    r = client.get("/api/versions", headers={**bearer(app, user), "x-api-version": "1.0.0"})
    assert r.status_code == 200 and r.get_json()["current"] == "1.0.0"
    assert r.headers["x-api-version-used"] == "1.0.0"
    assert client.get("/api/versions").status_code == 401
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_create_in_a_tenant_with_tenantId(app, client, db_session):
    system = make_user(db_session, role="admin", is_system=True)
    h = bearer(app, system)
    name = f"pb-user-{uuid.uuid4().hex[:6]}"
    r = client.post("/users/create", json={"username": name, "password": "p", "role": "read-write",
                                            "tenantId": "pb"}, headers=h)
    assert r.status_code == 201, r.get_json()
    login = client.post("/auth/login", json={"username": name, "password": "p"}).get_json()
    assert decode_token_claims(app, login["token"])["tenant"] == "pb"
    # the older spelling still works; both disagreeing, or an unknown field, is refused, never ignored
    assert client.post("/users/create", json={"username": name + "b", "password": "p", "role": "read-only",
                                              "tenant": "pb"}, headers=h).status_code == 201
    for body in ({"tenantId": "pb", "tenant": "xx"}, {"tenantID": "pb"}, {"tenantId": 5}, {"tenantId": ""}):
        r = client.post("/users/create", json={"username": name + "c", "password": "p", "role": "read-only", **body},
                        headers=h)
        assert r.status_code == 400 and r.mimetype == "application/problem+json", (body, r.get_json())


def test_a_tenant_admin_creates_only_in_its_own_tenants(app, client, db_session):
    admin = make_user(db_session, role="admin", tenant="pb")
    h = bearer(app, admin)
    ok = client.post("/users/create", json={"username": f"amr-{uuid.uuid4().hex[:6]}", "password": "p",
                                            "role": "read-write", "tenantId": "pb.amritsar"}, headers=h)
    assert ok.status_code == 201
    r = client.post("/users/create", json={"username": f"mh-{uuid.uuid4().hex[:6]}", "password": "p",
                                           "role": "read-write", "tenantId": "mh"}, headers=h)
    assert r.status_code == 403


def test_an_admin_cannot_delete_itself_nor_the_last_system_admin(app, client, db_session):
    from sqlalchemy import text
    # make this the only system admin for the duration of the (rolled back) test
    db_session.execute(text("UPDATE users SET is_system = false WHERE is_system"))
    system = make_user(db_session, role="admin", is_system=True)
    r = client.delete(f"/users/{system.username}", headers=bearer(app, system))
    assert r.status_code == 409 and "your own account" in r.get_json()["detail"]
    tenant_admin = make_user(db_session, role="admin", tenant="default")
    r = client.delete(f"/users/delete/{system.username}", headers=bearer(app, tenant_admin))
    assert r.status_code == 409 and r.get_json()["error"] == "last_system_admin"
    second = make_user(db_session, role="admin", is_system=True)
    assert client.delete(f"/users/{system.username}", headers=bearer(app, second)).status_code == 200
    assert client.post("/auth/login", json={"username": second.username, "password": "pw-secret"}).status_code == 200


def decode_token_claims(app, token):
    from flask_jwt_extended import decode_token
    with app.app_context():
        return decode_token(token)
