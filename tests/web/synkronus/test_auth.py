"""Synkronus auth: login, refresh rotation with reuse detection, and token abuse (401 problem+json)."""
import base64
import datetime as dt
import json
import uuid

import jwt
import pytest

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
    assert login(client, f"nobody-{uuid.uuid4().hex}").status_code == 401


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
                 client.post("/auth/login", json={"username": f"nobody-{uuid.uuid4().hex}", "password": "x"})):
        assert resp.mimetype == "application/problem+json", resp.headers
        body = resp.get_json()
        assert body["status"] == resp.status_code and body["type"] == "about:blank" and body["title"]
        assert body["detail"] == body["message"] and isinstance(body["error"], str)
    assert client.post("/auth/login", json={"username": "", "password": "x"}).get_json()["message"] == \
        "Username is required"


# -- the login throttle: per (user name, client address), a per-account ceiling, cleared on success -------

def login_from(client, address, username, password="pw-secret"):
    return client.post("/auth/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_login_is_throttled_per_address_with_429_problem_json_and_retry_after(client, db_session):
    user = make_user(db_session)
    for _ in range(10):
        assert login_from(client, "10.1.0.1", user.username, "guess").status_code == 401
    r = login_from(client, "10.1.0.1", user.username)  # even the right password waits
    assert r.status_code == 429 and r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests" and body["detail"] == body["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 300
    # the real owner, from its own address, is not locked out by someone who only knows the name
    ok = login_from(client, "10.1.0.2", user.username)
    assert ok.status_code == 200 and ok.get_json()["token"]


def test_unknown_user_names_are_throttled_too(client):
    name = f"nobody-{uuid.uuid4().hex}"
    for _ in range(10):
        assert login_from(client, "10.1.1.1", name, "guess").status_code == 401
    assert login_from(client, "10.1.1.1", name, "guess").status_code == 429


def test_a_success_clears_the_failures_of_its_address(client, db_session):
    user = make_user(db_session)
    for _ in range(9):
        assert login_from(client, "10.1.2.1", user.username, "typo").status_code == 401
    assert login_from(client, "10.1.2.1", user.username).status_code == 200
    for _ in range(10):
        r = login_from(client, "10.1.2.1", user.username, "typo")
        assert r.status_code == 401, "the 9 before the success are gone"
    assert login_from(client, "10.1.2.1", user.username).status_code == 429, "10 since the success"


def test_a_per_account_ceiling_stops_guessers_spread_over_many_addresses(client, db_session):
    user = make_user(db_session)
    for i in range(100):
        assert login_from(client, f"10.2.{i // 10}.{i % 10}", user.username, "guess").status_code == 401
    r = login_from(client, "10.3.0.1", user.username)
    assert r.status_code == 429 and 300 < int(r.headers["Retry-After"]) <= 900
    assert login_from(client, "10.3.0.1", make_user(db_session).username).status_code == 200, "per account"


def test_with_redis_down_logins_go_through_and_the_password_check_decides(settings, isolated_sessions, broker,
                                                                          client, db_session):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from web.app import create_app
    user = make_user(db_session)
    for _ in range(10):
        assert login_from(client, "10.1.3.1", user.username, "guess").status_code == 401
    assert login_from(client, "10.1.3.1", user.username).status_code == 429, "with Redis up: throttled"
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    app = create_app(settings, session_factory=isolated_sessions, celery_app=broker, redis_client=down)
    without_redis = app.test_client()
    assert login_from(without_redis, "10.1.3.1", user.username, "guess").status_code == 401
    assert login_from(without_redis, "10.1.3.1", user.username).status_code == 200


# -- odd input: every field a 400 in problem+json, never a 500 -------------------------------------------

SURROGATE = b'"a\\ud800b"'
ODD_LOGINS = [
    b'{"username": "a\\u0000b", "password": "x"}',
    b'{"username": ' + SURROGATE + b', "password": "x"}',
    b'{"username": "' + b"u" * 300 + b'", "password": "x"}',
    b'{"username": "' + b"u" * 1_000_000 + b'", "password": "x"}',
    b'{"username": "someone", "password": ' + SURROGATE + b'}',
    b'{"username": ["a"], "password": "x"}',
    b'{"username": 5, "password": "x"}',
    b'{"username": "someone", "password": {"a": 1}}',
    b'{"username": null, "password": true}',
]


ODD_REFRESHES = [b'{"refreshToken": "a\\u0000b"}', b'{"refreshToken": ' + SURROGATE + b'}',
                 b'{"refreshToken": "' + b"x" * 1_000_000 + b'"}', b'{"refreshToken": 5}']


def test_odd_login_and_refresh_input_is_4xx_problem_json(client):
    """NUL, a lone surrogate (the raw JSON escape), huge texts and wrong types: never a 500."""
    wrong = []
    for path, cases, expected in (("/auth/login", ODD_LOGINS, {400}), ("/auth/refresh", ODD_REFRESHES, {400, 401})):
        for raw in cases:
            r = client.post(path, data=raw, content_type="application/json")
            body = r.get_json(silent=True) or {}
            if (r.status_code not in expected or r.mimetype != "application/problem+json"
                    or "psycopg" in str(body.get("detail", "")).lower()):
                wrong.append((path, raw[:60], r.status_code))
    assert not wrong, wrong


# -- revocation: a password change or reset ends every token issued before -------------------------------

def _pull(client, token):
    return client.post("/sync/pull", json={"client_id": "c"}, headers={"Authorization": f"Bearer {token}"})


def test_a_password_reset_revokes_access_and_refresh_tokens(app, client, db_session):
    from tests.factories import bearer
    user = make_user(db_session)
    admin = make_user(db_session, role="admin")
    old = login(client, user.username).get_json()
    rotated = client.post("/auth/refresh", json={"refreshToken": old["refreshToken"]}).get_json()
    assert _pull(client, old["token"]).status_code == 200 and _pull(client, rotated["token"]).status_code == 200
    r = client.post("/users/reset-password", json={"username": user.username, "newPassword": "n3w"},
                    headers=bearer(app, admin))
    assert r.status_code == 200
    for token in (old["token"], rotated["token"]):
        r = _pull(client, token)
        assert r.status_code == 401 and r.mimetype == "application/problem+json"
        assert r.get_json()["detail"] == "the token has been revoked"
    assert client.post("/auth/refresh", json={"refreshToken": rotated["refreshToken"]}).status_code == 401
    fresh = login(client, user.username, "n3w").get_json()
    assert _pull(client, fresh["token"]).status_code == 200
    assert client.post("/auth/refresh", json={"refreshToken": fresh["refreshToken"]}).status_code == 200


def test_a_password_change_revokes_the_callers_tokens_too(client, db_session):
    user = make_user(db_session)
    old = login(client, user.username).get_json()
    h = {"Authorization": f"Bearer {old['token']}"}
    r = client.post("/users/change-password", json={"currentPassword": "pw-secret", "newPassword": "n2"}, headers=h)
    assert r.status_code == 200
    assert _pull(client, old["token"]).status_code == 401
    assert client.post("/auth/refresh", json={"refreshToken": old["refreshToken"]}).status_code == 401
    assert _pull(client, login(client, user.username, "n2").get_json()["token"]).status_code == 200


def test_a_refresh_token_of_an_old_version_is_refused_even_if_its_family_lives(app, client, db_session):
    """The family check and the version check are separate: a family made after the change does not
    revive a refresh token signed before it."""
    from models.users import set_password
    user = make_user(db_session)
    old = login(client, user.username).get_json()
    set_password(db_session, user, "n4", 4)
    from sqlalchemy import text
    db_session.execute(text("UPDATE refresh_families SET revoked = false WHERE user_id = :u"), {"u": user.id})
    db_session.commit()
    assert client.post("/auth/refresh", json={"refreshToken": old["refreshToken"]}).status_code == 401


def test_a_raw_token_outside_the_header_is_revoked_too(app, client, db_session):
    from models.users import set_password
    from web.auth import principal_from_token
    from web.errors import Unauthorized
    user = make_user(db_session)
    token = login(client, user.username).get_json()["token"]
    with app.test_request_context():
        assert principal_from_token(token).username == user.username
    set_password(db_session, user, "n5", 4)
    db_session.commit()
    with app.test_request_context(), pytest.raises(Unauthorized, match="revoked"):
        principal_from_token(token)


def test_tokens_carry_the_token_version(client, db_session, settings):
    user = make_user(db_session)
    body = login(client, user.username).get_json()
    for token in (body["token"], body["refreshToken"]):
        assert jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])["ver"] == 0


def test_a_pull_proves_its_token_in_the_page_statement_and_follows_the_stored_user(app, client, db_session,
                                                                                 connection):
    """/sync/pull checks the token's user inside its page statement (no look-up of its own); whenever the
    stored user is no longer exactly what the token says, the full check decides, as for any view."""
    from sqlalchemy import event, text

    from models.engine import Incoming, apply_chunk
    from models.users import ensure_tenant
    from tests.factories import bearer
    user = make_user(db_session, role="read-only")
    headers = bearer(app, user)
    statements = []
    event.listen(connection, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def pull():
        statements.clear()
        answer = client.post("/sync/pull", json={"client_id": "c"}, headers=headers)
        looked_up = any(s.lstrip().startswith("SELECT users.") for s in statements)
        return answer, looked_up

    answer, looked_up = pull()
    assert answer.status_code == 200 and not looked_up
    db_session.execute(text("UPDATE users SET role = 'admin' WHERE id = :id"), {"id": user.id})
    db_session.commit()
    answer, looked_up = pull()
    assert answer.status_code == 200 and looked_up  # the claim no longer matches: the full check, and it passes
    ensure_tenant(db_session, "t-moved")
    apply_chunk(db_session, tenant_id="t-moved", namespace="synkronus",
                records=[Incoming(position=0, key="obs-moved", record_type="survey", data={"q": 1})])
    db_session.execute(text("UPDATE users SET tenant_id = 't-moved' WHERE id = :id"), {"id": user.id})
    db_session.commit()
    answer, _ = pull()  # the page is read again for the tenant the user is in now
    assert answer.status_code == 200
    assert [r["observation_id"] for r in answer.get_json()["records"]] == ["obs-moved"]
    db_session.execute(text("UPDATE users SET role = 'analyst' WHERE id = :id"), {"id": user.id})
    db_session.commit()
    assert pull()[0].status_code == 403
