"""GET /health and GET /version in the Synkronus 1.0.3 shapes, including 503 when a part is down."""
import threading
import time

import psutil
import pytest
import redis as redis_lib
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from models.db import engine_for, make_engine, make_session_factory
from tests.conftest import wait_for
from web.app import create_app
from web.embedded import EmbeddedPostgres


def test_health_ok(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.get_json()
    assert body["status"] == "ok" and body["version"] and body["timestamp"].endswith("Z")


def test_version_is_public_and_describes_the_database(client):
    r = client.get("/version")
    assert r.status_code == 200
    body = r.get_json()
    assert body["database"]["type"] == "postgresql"
    assert "PostgreSQL" in body["database"]["version"]
    assert body["database"]["database_name"].startswith("fieldsync_test")
    assert isinstance(body["system"]["cpus"], int)
    assert set(body["build"]) == {"commit", "build_time", "go_version"}


def test_health_503_when_redis_is_down(settings, isolated_sessions, broker):
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    app = create_app(settings, session_factory=isolated_sessions, celery_app=broker, redis_client=dead)
    r = app.test_client().get("/health")
    assert r.status_code == 503
    body = r.get_json()
    assert body["status"] == "error" and body["failing"] == ["redis"] and "redis" in body["error"]


def test_health_503_when_postgres_is_down(settings, broker, redis_client):
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none")
    app = create_app(settings, session_factory=sessionmaker(bind=engine), celery_app=broker,
                     redis_client=redis_client)
    r = app.test_client().get("/health")
    assert r.status_code == 503
    assert r.get_json()["failing"] == ["postgresql"]


def _in_thread(fn, timeout):
    """Run fn in a thread; (finished, result or exception, seconds taken), waiting at most `timeout`."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            out["value"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return "value" in out, out.get("value"), time.monotonic() - started


@pytest.mark.timeout(150)
def test_health_answers_503_within_seconds_while_postgres_is_frozen(tmp_path, settings, broker, redis_client):
    """A PostgreSQL whose processes are all stopped (SIGSTOP) accepts TCP but never answers: /health
    still answers 503 within about 5 s, a new web connection gives up after its connect timeout, and all
    is well again after SIGCONT."""
    pg = EmbeddedPostgres(tmp_path / "frozen-pg")
    url = pg.start()
    engine = make_engine(url)
    frozen = []
    try:
        app = create_app(settings.replace(database_url=url), session_factory=make_session_factory(engine),
                         celery_app=broker, redis_client=redis_client)
        client = app.test_client()
        assert client.get("/health").status_code == 200  # the pool now holds a live connection
        postmaster = psutil.Process(pg.pid)
        frozen = [postmaster, *postmaster.children(recursive=True)]
        for proc in frozen:
            proc.suspend()

        finished, response, seconds = _in_thread(lambda: client.get("/health"), timeout=20)
        assert finished, "/health hung while PostgreSQL was frozen"
        assert response.status_code == 503 and response.get_json()["failing"] == ["postgresql"]
        assert seconds < 6

        web_engine = engine_for(settings.replace(database_url=url, db_connect_timeout_seconds=2), "web")
        finished, result, seconds = _in_thread(lambda: web_engine.connect().close(), timeout=20)
        assert finished, "connecting to a frozen PostgreSQL hung"
        assert isinstance(result, OperationalError) and seconds < 5
        web_engine.dispose()
    finally:
        for proc in frozen:
            proc.resume()
        if frozen:
            wait_for(lambda: client.get("/health").status_code == 200, timeout=30, message="health after SIGCONT")
        engine.dispose()
        pg.stop()
