"""Fixtures for the mSupply view tests: an app on the rolled-back test transaction whose push wait is
short (nothing runs the job here), and a session on that same transaction."""
import uuid

import pytest


@pytest.fixture
def app(settings, isolated_sessions, broker, redis_client):
    from web.app import create_app
    application = create_app(settings.replace(sync_wait_seconds=0.3), session_factory=isolated_sessions,
                             celery_app=broker, redis_client=redis_client)
    application.testing = True
    return application


@pytest.fixture
def session(isolated_sessions):
    s = isolated_sessions()
    yield s
    s.close()


@pytest.fixture
def tenant(session):
    from models.users import ensure_tenant
    name = f"t-{uuid.uuid4().hex[:8]}"
    ensure_tenant(session, name)
    session.commit()
    return name
