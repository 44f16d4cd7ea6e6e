"""/metrics: off without METRICS_TOKEN, a bearer token otherwise, and request counts by route."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def metrics_app(settings, isolated_sessions, broker, redis_client):
    from web.app import create_app
    application = create_app(settings.replace(metrics_token="scrape-me"), session_factory=isolated_sessions,
                             celery_app=broker, redis_client=redis_client)
    application.testing = True
    return application


def _samples(text):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_off_without_a_token(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_bearer_token(metrics_app):
    client = metrics_app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic c2NyYXBlLW1l"}).status_code == 401
    r = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert r.status_code == 200 and r.mimetype == "text/plain"


def test_requests_are_counted_by_route_not_path(metrics_app):
    client = metrics_app.test_client()
    auth = {"Authorization": "Bearer scrape-me"}
    before = _samples(client.get("/metrics", headers=auth).get_data(as_text=True))
    for n in range(3):
        client.get(f"/jobs/0000000{n}-0000-0000-0000-000000000000")  # 401s, one route
    after = _samples(client.get("/metrics", headers=auth).get_data(as_text=True))
    key = ("fieldsync_http_requests_total", (("method", "GET"), ("route", "/jobs/<job_id>"), ("status", "401")))
    assert after.get(key, 0) - before.get(key, 0) == 3
    assert ("fieldsync_queue_depth", (("queue", "ingest"),)) in after
    assert any(name == "fieldsync_http_request_duration_seconds_bucket" for name, _ in after)
