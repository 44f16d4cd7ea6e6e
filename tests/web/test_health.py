"""GET /health and GET /version in the Synkronus 1.0.3 shapes, including 503 when a part is down."""
import redis as redis_lib
from sqlalchemy.orm import sessionmaker

from models.db import make_engine
from web.app import create_app


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
