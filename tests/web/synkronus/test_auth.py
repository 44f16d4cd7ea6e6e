"""Synkronus auth: login, refresh rotation with reuse detection, and token abuse (401 problem+json)."""
import base64
import datetime as dt
import json

import jwt

from tests.factories import make_user


def login(client, username, password="pw-secret"):
    return client.post("/auth/login", json={"username": username, "password": password})


def test_login_returns_tokens_with_the_claims_clients_read(app, client, db_session, settings):
    user = make_user(db_session, role="read-write")
    r = login(client, user.username)
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"token", "refreshToken", "expiresAt"}
    claims = jwt.decode(body["token"], settings.jwt_secret, algorithms=["HS256"])
    assert claims["username"] == user.username and claims["role"] == "read-write"
    assert claims["sub"] == str(user.id) and claims["exp"] == body["expiresAt"] and "iat" in claims
    assert claims["type"] == "access"


def test_login_errors(client, db_session):
    user = make_user(db_session)
    assert client.post("/auth/login", json={"password": "x"}).status_code == 400
    assert client.post("/auth/login", json={"username": user.username}).status_code == 400
    assert client.post("/auth/login", data=b"{", content_type="application/json").status_code == 400
    r = login(client, user.username, "wrong")
    assert r.status_code == 401 and r.mimetype == "application/problem+json"
    assert login(client, "nobody-at-all").status_code == 401


def test_refresh_rotates_and_reuse_revokes_the_family(client, db_session):
    user = make_user(db_session)
    first = login(client, user.username).get_json()
    r = client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert r.status_code == 200
    second = r.get_json()
    assert second["refreshToken"] != first["refreshToken"] and second["token"] != first["token"]
    reuse = client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reuse.status_code == 401
    after = client.post("/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert after.status_code == 401, "the whole family is revoked after a reuse"
    assert client.post("/auth/refresh", json={}).status_code == 400


def test_refresh_token_is_not_an_access_token(client, db_session):
    user = make_user(db_session)
    tokens = login(client, user.username).get_json()
    r = client.post("/sync/pull", json={"client_id": "c"}, headers={"Authorization": f"Bearer {tokens['refreshToken']}"})
    assert r.status_code == 401
    r = client.post("/auth/refresh", json={"refreshToken": tokens["token"]})
    assert r.status_code == 401


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_forged_expired_and_tampered_tokens_are_401(client, db_session, settings):
    user = make_user(db_session)
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    claims = {"sub": str(user.id), "username": user.username, "role": "admin", "type": "access", "iat": now,
              "nbf": now, "exp": now + 600, "jti": "x", "fresh": False}
    alg_none = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    expired = jwt.encode({**claims, "exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}, settings.jwt_secret,
                         algorithm="HS256")
    good = jwt.encode(claims, settings.jwt_secret, algorithm="HS256")
    head, payload, sig = good.split(".")
    tampered = head + "." + _b64({**claims, "role": "admin", "username": "root"}) + "." + sig
    wrong_key = jwt.encode(claims, "another-secret", algorithm="HS256")
    for token in (alg_none, expired, tampered, wrong_key, "garbage"):
        r = client.post("/sync/pull", json={"client_id": "c"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.mimetype == "application/problem+json"
    r = client.post("/sync/pull", json={"client_id": "c"}, headers={"Authorization": f"Bearer {good}"})
    assert r.status_code == 200


def test_token_of_a_deleted_user_is_401(app, client, db_session):
    from models.users import delete_user
    from tests.factories import bearer
    user = make_user(db_session)
    headers = bearer(app, user)
    assert client.post("/sync/pull", json={"client_id": "c"}, headers=headers).status_code == 200
    delete_user(db_session, user.username)
    db_session.commit()
    assert client.post("/sync/pull", json={"client_id": "c"}, headers=headers).status_code == 401


def test_errors_are_problem_json_with_the_members_real_clients_read(client):
    for resp in (client.post("/auth/login", json={"username": "", "password": "x"}),
                 client.post("/auth/login", data=b"{not json", content_type="application/json"),
                 client.post("/auth/login", json={"username": "nobody-here", "password": "x"})):
        assert resp.mimetype == "application/problem+json", resp.headers
        body = resp.get_json()
        assert body["status"] == resp.status_code and body["type"] == "about:blank" and body["title"]
        assert body["detail"] == body["message"] and isinstance(body["error"], str)
    assert client.post("/auth/login", json={"username": "", "password": "x"}).get_json()["message"] == \
        "Username is required"
