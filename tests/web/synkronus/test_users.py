"""Synkronus user administration."""
import uuid

import pytest

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
    assert r.status_code == 404, "only a system admin touches a system admin"
    # only reachable through the API by two system admins deleting each other at once: the model refuses
    from models.users import LastSystemAdmin, delete_user
    with pytest.raises(LastSystemAdmin):
        delete_user(db_session, system.username)
    second = make_user(db_session, role="admin", is_system=True)
    assert client.delete(f"/users/{system.username}", headers=bearer(app, second)).status_code == 200
    assert client.post("/auth/login", json={"username": second.username, "password": "pw-secret"}).status_code == 200


def decode_token_claims(app, token):
    from flask_jwt_extended import decode_token
    with app.app_context():
        return decode_token(token)


# -- a system admin is touched only by a system admin --------------------------------------------------

def _login(client, username, password="pw-secret"):
    return client.post("/auth/login", json={"username": username, "password": password})


def test_a_tenant_admin_cannot_take_over_a_system_admin(app, client, db_session):
    system = make_user(db_session, role="admin", is_system=True, tenant="default")
    tenant_admin = make_user(db_session, role="admin", tenant="default")
    h = bearer(app, tenant_admin)
    r = client.post("/users/reset-password", json={"username": system.username, "newPassword": "owned"}, headers=h)
    assert r.status_code == 404 and r.mimetype == "application/problem+json", "answered as for another tenant's user"
    assert _login(client, system.username, "owned").status_code == 401
    assert _login(client, system.username).status_code == 200, "the system admin's password is unchanged"
    assert client.delete(f"/users/{system.username}", headers=h).status_code == 404
    assert client.delete(f"/users/delete/{system.username}", headers=h).status_code == 404
    assert system.username not in {u["username"] for u in client.get("/users", headers=h).get_json()}
    # what the escalation went on to do: users in any tenant, system users; both stay refused
    r = client.post("/users/create", json={"username": f"x-{uuid.uuid4().hex[:6]}", "password": "p",
                                           "role": "admin", "tenantId": "elsewhere"}, headers=h)
    assert r.status_code == 403
    r = client.post("/users/create", json={"username": f"x-{uuid.uuid4().hex[:6]}", "password": "p",
                                           "role": "admin", "is_system": True}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"] == "unknown_field"
    # a system admin still manages other system admins
    other_system = make_user(db_session, role="admin", is_system=True)
    hs = bearer(app, system)
    assert other_system.username in {u["username"] for u in client.get("/users", headers=hs).get_json()}
    assert client.post("/users/reset-password", json={"username": other_system.username, "newPassword": "n"},
                       headers=hs).status_code == 200


def test_a_system_admin_inside_a_tenant_subtree_is_still_out_of_reach(app, client, db_session):
    tenant = f"t{uuid.uuid4().hex[:6]}"
    admin = make_user(db_session, role="admin", tenant=tenant)
    system_below = make_user(db_session, role="admin", is_system=True, tenant=f"{tenant}.district")
    h = bearer(app, admin)
    assert client.post("/users/reset-password", json={"username": system_below.username, "newPassword": "x"},
                       headers=h).status_code == 404
    assert client.delete(f"/users/{system_below.username}", headers=h).status_code == 404


def test_an_admin_lists_the_users_of_its_tenant_and_those_below_it(app, client, db_session):
    tenant = f"t{uuid.uuid4().hex[:6]}"
    admin = make_user(db_session, role="admin", tenant=tenant)
    own = make_user(db_session, tenant=tenant)
    below = make_user(db_session, tenant=f"{tenant}.district")
    look_alike = make_user(db_session, tenant=f"{tenant}x")
    names = {u["username"] for u in client.get("/users", headers=bearer(app, admin)).get_json()}
    assert {admin.username, own.username, below.username} <= names
    assert look_alike.username not in names


# -- odd input: a 400 in problem+json on every users endpoint, never a 500 -------------------------------

SURROGATE = b'"a\\ud800b"'
NUL = b'"a\\u0000b"'
HUGE = b'"' + b"x" * 1_000_000 + b'"'


def _body(**fields) -> bytes:
    import json
    base = {"username": f"u-{uuid.uuid4().hex[:8]}", "password": "p", "role": "read-only"}
    out = {k: v for k, v in base.items() if k not in fields}
    raw = json.dumps(out)[:-1].encode()
    return raw + b"".join(b', "' + k.encode() + b'": ' + v for k, v in fields.items()) + b"}"


ODD_CREATES = {
    "nul-name": _body(username=NUL), "surrogate-name": _body(username=SURROGATE),
    "300-char-name": _body(username=b'"' + b"n" * 300 + b'"'), "huge-name": _body(username=HUGE),
    "list-name": _body(username=b'["a"]'), "nul-tenant": _body(tenantId=NUL),
    "surrogate-tenant": _body(tenantId=SURROGATE), "1mb-tenant": _body(tenantId=HUGE),
    "object-tenant": _body(tenantId=b'{"a": 1}'), "list-tenant": _body(tenant=b'["pb"]'),
    "surrogate-password": _body(password=SURROGATE),
    "number-password": _body(password=b"5"), "nul-role": _body(role=NUL), "list-role": _body(role=b"[1]"),
}


ODD_RESETS = {
    "nul-name": b'{"username": ' + NUL + b', "newPassword": "x"}',
    "surrogate-name": b'{"username": ' + SURROGATE + b', "newPassword": "x"}',
    "huge-name": b'{"username": ' + HUGE + b', "newPassword": "x"}',
    "surrogate-password": b'{"username": "someone", "newPassword": ' + SURROGATE + b'}',
    "number-name": b'{"username": 1, "newPassword": "x"}',
}
ODD_CHANGES = {
    "surrogate-current": b'{"currentPassword": ' + SURROGATE + b', "newPassword": "x"}',
    "surrogate-new": b'{"currentPassword": "pw-secret", "newPassword": ' + SURROGATE + b'}',
    "list-new": b'{"currentPassword": "pw-secret", "newPassword": ["x"]}',
}


def _wrong_answers(client, method, path, cases, headers, expected=(400,)):
    wrong = []
    for label, raw in cases.items():
        r = client.open(path, method=method, data=raw, content_type="application/json", headers=headers)
        body = r.get_json(silent=True) or {}
        if (r.status_code not in expected or r.mimetype != "application/problem+json"
                or "psycopg" in str(body.get("detail", "")).lower()):
            wrong.append((path, label, r.status_code))
    return wrong


def test_odd_input_on_every_users_endpoint_is_400_problem_json(app, client, db_session):
    """NUL, a lone surrogate (the raw JSON escape \\ud800), huge texts and wrong types: never a 500."""
    system = make_user(db_session, role="admin", is_system=True)
    user = make_user(db_session)
    hs, hu = bearer(app, system), bearer(app, user)
    wrong = (_wrong_answers(client, "POST", "/users/create", ODD_CREATES, hs)
             + _wrong_answers(client, "POST", "/users/reset-password", ODD_RESETS, hs)
             + _wrong_answers(client, "POST", "/users/change-password", ODD_CHANGES, hu))
    for path, expected in (("/users/a%00b", {400}), ("/users/delete/a%00b", {400}), ("/users/" + "n" * 300, {400}),
                           ("/users/a%ED%A0%80b", {400, 404})):
        r = client.delete(path, headers=hs)
        if r.status_code not in expected or r.mimetype != "application/problem+json":
            wrong.append((path, r.status_code))
    assert not wrong, wrong
    assert client.post("/auth/login", json={"username": user.username, "password": "pw-secret"}).status_code == 200
    # a NUL in a password is fine: passwords are only hashed
    name = f"nulpw-{uuid.uuid4().hex[:6]}"
    raw = b'{"username": "' + name.encode() + b'", "password": "a\\u0000b", "role": "read-only"}'
    assert client.post("/users/create", data=raw, content_type="application/json", headers=hs).status_code == 201
    assert _login(client, name, "a\x00b").status_code == 200


# -- the command line's set-password revokes too ---------------------------------------------------------

def test_cli_set_password_revokes_the_users_tokens(settings, engine, live_app, real_sessions):
    from click.testing import CliRunner
    from models.db import session_scope
    from models.users import delete_user
    from web.cli import main
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, "BCRYPT_ROUNDS": "4"}
    name = f"cli-rev-{uuid.uuid4().hex[:6]}"
    run = CliRunner()
    assert run.invoke(main, ["user", "create", name, "--role", "read-only", "--password", "pw"], env=env,
                      catch_exceptions=False).exit_code == 0
    try:
        client = live_app.test_client()
        tokens = _login(client, name, "pw").get_json()
        h = {"Authorization": f"Bearer {tokens['token']}"}
        assert client.get("/api/versions", headers=h).status_code == 200
        assert run.invoke(main, ["user", "set-password", name, "--password", "pw2"], env=env,
                          catch_exceptions=False).exit_code == 0
        assert client.get("/api/versions", headers=h).status_code == 401
        assert client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]}).status_code == 401
    finally:
        with session_scope(real_sessions) as session:
            delete_user(session, name)


def test_guessing_the_current_password_with_a_token_is_throttled_like_login(app, client, db_session):
    user = make_user(db_session)
    h = bearer(app, user)
    for _ in range(10):
        r = client.post("/users/change-password", json={"currentPassword": "guess", "newPassword": "n"}, headers=h,
                        environ_base={"REMOTE_ADDR": "10.5.0.1"})
        assert r.status_code == 401
    r = client.post("/users/change-password", json={"currentPassword": "pw-secret", "newPassword": "n"}, headers=h,
                    environ_base={"REMOTE_ADDR": "10.5.0.1"})
    assert r.status_code == 429 and r.mimetype == "application/problem+json" and int(r.headers["Retry-After"]) > 0
    assert client.post("/auth/login", json={"username": user.username, "password": "pw-secret"},
                       environ_base={"REMOTE_ADDR": "10.5.0.1"}).status_code == 429, "the same counters as login"
