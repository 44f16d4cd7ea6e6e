"""The sync contract, run by every dialect through its adapter (tests/contract/adapters/).

1. A replay gives the same answer and applies nothing twice.
2. One bad record never sinks its batch.
3-7. Malformed JSON 400, oversize 413, unknown path 404 (the dialect's not-found status), wrong role 403,
   missing credentials 401: each in the dialect's own error envelope.
8. Another tenant's ids answer exactly like unknown ids.
9. No 5xx carries exception text: every response of the suite is below 500 (CheckedClient), and a forced
   server error (an unreachable database, an unwritable blob store) answers 5xx without exception text.

Tests 1-2 run a real worker (live_env); the others run the app on the rolled-back test transaction (env)."""
from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from tests.contract.adapters import ADAPTERS
from tests.contract.adapters.base import STUCK_HINT, Env, show
from tests.contract.setup_helpers import build_app

by_dialect = pytest.mark.parametrize("adapter", ADAPTERS, ids=[a.name for a in ADAPTERS])


def _check_all(client, requests, check) -> None:
    """Send every request and check its answer; report every failure, not just the first."""
    assert requests, "the adapter built no request for this case"
    failures = []
    for req in requests:
        try:
            check(req, req.send(client))
        except AssertionError as exc:
            failures.append(f"[{req.describe()}] {exc}")
    assert not failures, "\n".join(failures)


def _push_failure(response) -> str:
    return show(response) + (f" ({STUCK_HINT})" if response.status_code == 202 else "")


# --- 1. replay -------------------------------------------------------------------------------------

@by_dialect
def test_replay_gives_the_same_answer_and_applies_nothing_twice(adapter, live_env, tenants):
    env = live_env
    creds = adapter.setup(env, *tenants)
    records = [adapter.good_record(i) for i in range(3)]
    batch_id = f"batch-{uuid.uuid4().hex[:12]}"

    first = adapter.push(env, creds, records, batch_id)
    assert first.status_code in adapter.push_ok_statuses, _push_failure(first)
    adapter.wait_applied(env, creds, first)
    keys = adapter.stored_keys(env, creds)
    assert keys == {adapter.key_of(r) for r in records}
    changes = adapter.record_changes(env, creds)
    assert changes == len(records)

    again = adapter.push(env, creds, records, batch_id)
    assert again.status_code == first.status_code, show(again)
    adapter.wait_applied(env, creds, again)
    assert adapter.replay_answer(again) == adapter.replay_answer(first), \
        f"the replay answered differently:\nfirst:  {show(first)}\nreplay: {show(again)}"
    assert adapter.stored_keys(env, creds) == keys
    assert adapter.record_changes(env, creds) == changes, "the replay applied records again"


# --- 2. one bad record -----------------------------------------------------------------------------

@by_dialect
def test_one_bad_record_never_sinks_its_batch(adapter, live_env, tenants):
    env = live_env
    creds = adapter.setup(env, *tenants)
    good1, bad, good2 = adapter.good_record(1), adapter.bad_record(), adapter.good_record(2)

    response = adapter.push(env, creds, [good1, bad, good2], f"batch-{uuid.uuid4().hex[:12]}")
    assert response.status_code in adapter.push_ok_statuses, _push_failure(response)
    adapter.wait_applied(env, creds, response)
    assert adapter.stored_keys(env, creds) == {adapter.key_of(good1), adapter.key_of(good2)}
    reported = adapter.reported_errors(env, creds, response)
    if reported is not None:
        assert [(r.position, r.record_id) for r in reported] == [(1, adapter.id_of(bad))], reported


# --- 3-7. error statuses in the dialect's envelope -------------------------------------------------

def _expect(adapter, status):
    def check(req, response):
        adapter.assert_error_envelope(response, req.expect_status or status)
    return check


@by_dialect
def test_malformed_json_is_400(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    _check_all(env.client, adapter.malformed_json_requests(creds), _expect(adapter, 400))


@by_dialect
def test_oversize_body_is_413(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    requests = adapter.oversize_requests(creds, env.limits)
    _check_all(env.client, requests, _expect(adapter, 413))


@by_dialect
def test_unknown_path_is_not_found(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    _check_all(env.client, adapter.unknown_path_requests(creds), _expect(adapter, adapter.not_found_status))


@by_dialect
def test_wrong_role_is_403(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    _check_all(env.client, adapter.wrong_role_requests(creds), _expect(adapter, adapter.forbidden_status))


@by_dialect
def test_missing_credentials_is_401(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    _check_all(env.client, adapter.missing_credentials_requests(creds), _expect(adapter, 401))


# --- 8. another tenant's ids -----------------------------------------------------------------------

def _normalised(response, ids):
    text = response.get_data(as_text=True)
    for value in sorted(ids, key=len, reverse=True):
        text = text.replace(value, "<ID>")
    try:
        return json.loads(text)
    except ValueError:
        return text


@by_dialect
def test_another_tenants_ids_answer_like_unknown_ids(adapter, env, tenants):
    creds = adapter.setup(env, *tenants)
    cases = adapter.foreign_id_cases(env, creds)
    assert cases
    failures = []
    for case in cases:
        status = case.status or adapter.not_found_status
        try:
            foreign = case.foreign.send(env.client)
            unknown = case.unknown.send(env.client)
            assert foreign.status_code != 403, f"a foreign id is 403 (it tells the id exists): {show(foreign)}"
            assert foreign.status_code == status, f"expected {status}: {show(foreign)}"
            assert unknown.status_code == status, f"expected {status} for an unknown id: {show(unknown)}"
            if status >= 400:
                adapter.assert_error_envelope(foreign, status)
            assert _normalised(foreign, case.ids) == _normalised(unknown, case.ids), \
                f"a foreign id answers unlike an unknown one:\nforeign: {show(foreign)}\nunknown: {show(unknown)}"
        except AssertionError as exc:
            failures.append(f"[{case.label}] {exc}")
    try:
        adapter.assert_tenant_a_intact(env, creds)
    except AssertionError as exc:
        failures.append(f"[tenant A after B's requests] {exc}")
    assert not failures, "\n".join(failures)


# --- 9. no 5xx carries exception text --------------------------------------------------------------

UNREACHABLE_DB = "postgresql+psycopg2://postgres@127.0.0.1:9/fieldsync_unreachable"


@pytest.fixture(params=["database_unreachable", "blob_store_unwritable"])
def fault_app(request, contract_settings, isolated_sessions, broker, redis_client, tmp_path):
    """An app with one broken dependency, built through create_app's own parameters (no app code is
    changed and the shared servers are left alone): a session factory on a port where no PostgreSQL
    listens, or a data directory that is a regular file (so the blob store cannot write)."""
    if request.param == "database_unreachable":
        engine = create_engine(UNREACHABLE_DB, connect_args={"connect_timeout": 2})
        app = build_app(contract_settings, session_factory=sessionmaker(bind=engine), celery_app=broker,
                        redis_client=redis_client)
        yield request.param, app, ["127.0.0.1:9", "fieldsync_unreachable", "port 9"]
        engine.dispose()
        return
    not_a_dir = tmp_path / "data-dir-is-a-file"
    not_a_dir.write_text("not a directory")
    app = build_app(contract_settings.replace(data_dir=not_a_dir), session_factory=isolated_sessions,
                    celery_app=broker, redis_client=redis_client)
    yield request.param, app, [str(tmp_path), "data-dir-is-a-file"]


@by_dialect
def test_a_forced_server_error_carries_no_exception_text(adapter, env, tenants, fault_app, monkeypatch):
    fault, app, secrets = fault_app
    if fault == "blob_store_unwritable":
        adapter.use_the_blob_store(monkeypatch)
    creds = adapter.setup(env, *tenants)  # on the working app; tokens are valid on the broken one too
    broken = Env(client=app.test_client(), admin_headers=env.admin_headers, sql=env.sql, live=False,
                 limits=env.limits)
    response = adapter.push(broken, creds, [adapter.good_record(1)], f"batch-{uuid.uuid4().hex[:12]}")
    assert response.status_code >= 500, f"{fault}: expected a 5xx, got {show(response)}"
    adapter.assert_error_envelope(response, response.status_code)
    adapter.assert_no_exception_text(response, secrets)
