"""Fixtures of the contract suite: apps with small body caps, a checked client (every response below 500),
a committed system admin, and the `Env` handed to the adapters."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from tests.contract.adapters.base import Env, show
from tests.contract.setup_helpers import build_app, ensure_system_admin

MAX_BODY_BYTES = 32 * 1024
MAX_UPLOAD_BYTES = 64 * 1024
MAX_RECORDS_PER_PUSH = 50
LIMITS = {"max_body_bytes": MAX_BODY_BYTES, "max_upload_bytes": MAX_UPLOAD_BYTES,
          "max_records_per_push": MAX_RECORDS_PER_PUSH}
ADMIN_PASSWORD = "contract-admin-pw"


class CheckedClient:
    """A Flask test client whose every response is checked: no 5xx (contract item 9). `responses`
    keeps what it saw."""

    def __init__(self, inner):
        self.inner = inner
        self.responses = []

    def open(self, *args, **kwargs):
        response = self.inner.open(*args, **kwargs)
        self.responses.append(response)
        assert response.status_code < 500, f"a 5xx: {show(response)}"
        return response

    def get(self, *a, **kw):
        return self.open(*a, method="GET", **kw)

    def post(self, *a, **kw):
        return self.open(*a, method="POST", **kw)

    def put(self, *a, **kw):
        return self.open(*a, method="PUT", **kw)

    def patch(self, *a, **kw):
        return self.open(*a, method="PATCH", **kw)

    def delete(self, *a, **kw):
        return self.open(*a, method="DELETE", **kw)

    def head(self, *a, **kw):
        return self.open(*a, method="HEAD", **kw)


@pytest.fixture
def contract_settings(settings):
    """Small caps so oversize bodies and batches stay small; a short push wait since no worker runs
    view-level jobs."""
    return settings.replace(max_body_bytes=MAX_BODY_BYTES, max_upload_bytes=MAX_UPLOAD_BYTES,
                            max_records_per_push=MAX_RECORDS_PER_PUSH, sync_wait_seconds=0.3)


@pytest.fixture
def app(contract_settings, isolated_sessions, broker, redis_client):
    """Overrides tests/conftest.py's `app` (same sessions, broker and Redis) with the contract settings."""
    return build_app(contract_settings, session_factory=isolated_sessions, celery_app=broker,
                     redis_client=redis_client)


@pytest.fixture(scope="session")
def system_admin(real_sessions):
    """A committed system admin (what `fieldsync serve` bootstraps), visible to every app of the run."""
    username = f"ct-sysadmin-{uuid.uuid4().hex[:8]}"
    ensure_system_admin(real_sessions, username, ADMIN_PASSWORD)
    return username, ADMIN_PASSWORD


def _login(client, system_admin) -> dict:
    username, password = system_admin
    r = client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, show(r)
    return {"Authorization": f"Bearer {r.get_json()['token']}"}


def _sql(session):
    def run(query: str, params: dict | None = None) -> list:
        return [tuple(row) for row in session.execute(text(query), params or {}).all()]
    return run


@pytest.fixture
def env(client, db_session, system_admin):
    """View-level: the contract app on the rolled-back test transaction; nothing runs jobs."""
    checked = CheckedClient(client)
    return Env(client=checked, admin_headers=_login(checked, system_admin), sql=_sql(db_session), live=False,
               limits=dict(LIMITS))


@pytest.fixture
def live_env(live_worker, live_app, real_sessions, system_admin, settings):
    """End to end: a real worker, the app on committed sessions and the real broker."""
    checked = CheckedClient(live_app.test_client())
    session = real_sessions()

    def run(query: str, params: dict | None = None) -> list:
        try:
            return [tuple(row) for row in session.execute(text(query), params or {}).all()]
        finally:
            session.rollback()  # a fresh snapshot for every query

    yield Env(client=checked, admin_headers=_login(checked, system_admin), sql=run, live=True,
              limits={"max_body_bytes": settings.max_body_bytes, "max_upload_bytes": settings.max_upload_bytes,
                      "max_records_per_push": settings.max_records_per_push})
    session.close()


@pytest.fixture
def tenants():
    suffix = uuid.uuid4().hex[:8]
    return f"cta-{suffix}", f"ctb-{suffix}"
