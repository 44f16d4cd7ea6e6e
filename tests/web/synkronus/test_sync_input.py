"""Hostile input on POST /sync/push and /sync/pull: NUL or lone-surrogate ids, versions beyond a bigint,
megabyte client ids and oversize batches answer a 4xx problem+json (never a 5xx, never the 503 that
makes clients retry)."""
import pytest

from tests.factories import bearer, make_user


@pytest.fixture
def app(settings, isolated_sessions, broker, redis_client):
    from web.app import create_app
    application = create_app(settings.replace(sync_wait_seconds=0.2), session_factory=isolated_sessions,
                             celery_app=broker, redis_client=redis_client)
    application.testing = True
    return application


@pytest.fixture
def writer(app, db_session):
    return bearer(app, make_user(db_session, role="read-write"))


def _problem(response, status=400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["error"] and body["message"]
    assert len(response.get_data()) < 4000 and "psycopg" not in response.get_data(as_text=True)
    return body


RECORD = (b'{"observation_id": "o1", "form_type": "f", "form_version": "1", "data": {}, '
          b'"created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-15T10:30:00Z", "deleted": false}')


def _push(client, headers, transmission=b'"tx-1"', client_id=b'"phone-1"', records=b"[" + RECORD + b"]"):
    body = b'{"transmission_id": ' + transmission + b', "client_id": ' + client_id + b', "records": ' + records + b"}"
    return client.post("/sync/push", data=body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("value", [b'"tx\\u0000"', b'"\\ud800"'], ids=["nul", "lone_surrogate"])
def test_push_ids_that_cannot_be_stored_are_400(client, writer, value):
    _problem(_push(client, writer, transmission=value))
    _problem(_push(client, writer, client_id=value))


def test_a_push_over_max_records_per_push_is_413(client, writer, settings):
    cap = settings.max_records_per_push
    body = _problem(_push(client, writer, records=b"[" + b"{}," * cap + b"{}]"), 413)
    assert body["error"] == "too_many_records" and str(cap) in body["message"]


def _pull(client, headers, body: bytes, query: str = ""):
    return client.post(f"/sync/pull{query}", data=body, content_type="application/json", headers=headers)


def test_pull_refuses_what_cannot_reach_sql_with_400(client, writer):
    _problem(_pull(client, writer, b'{"client_id": "c", "since": {"version": ' + str(2 ** 63).encode() + b"}}"))
    _problem(_pull(client, writer, b'{"client_id": "c\\u0000"}'))
    _problem(_pull(client, writer, b'{"client_id": "\\udc00"}'))
    _problem(_pull(client, writer, b'{"client_id": "c", "schema_types": ["s\\u0000"]}'))
    _problem(_pull(client, writer, b'{"client_id": "c"}', "?schemaType=%00"))


def test_a_megabyte_client_id_on_pull_is_400_not_503(client, writer):
    body = _problem(_pull(client, writer, b'{"client_id": "' + b"c" * 1_000_000 + b'"}'))
    assert body["error"] == "invalid_request"
