"""/openapi.json describes every non-dialect route, with the methods it answers; the page shows it."""
from __future__ import annotations

from web.ops.openapi import openapi_path


def _core_routes(app):
    dialects = app.extensions["fieldsync_dialect_blueprints"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.rpartition(".")[0] in dialects:
            continue
        yield rule, {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_non_dialect_route_is_described(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    missing = []
    for rule, methods in _core_routes(app):
        described = spec["paths"].get(openapi_path(rule.rule), {})
        for method in methods:
            if method not in described:
                missing.append(f"{method.upper()} {rule.rule}")
    assert missing == []
    # and nothing of a dialect's is listed
    assert not any(path.startswith(("/sync/", "/attachments", "/app-bundle", "/filestore")) for path in spec["paths"])


def test_schemas_come_from_marshmallow(client):
    spec = client.get("/openapi.json").get_json()
    job = spec["components"]["schemas"]["JobOut"]
    assert job["properties"]["status"]["enum"] == ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
    params = spec["paths"]["/jobs/{job_id}/errors"]["get"]["parameters"]
    assert {p["name"] for p in params} >= {"job_id", "limit", "after"}


def test_the_page_lists_the_operations(client):
    page = client.get("/ops/api-docs").get_data(as_text=True)
    assert "GET /jobs/{job_id}" in page and "POST /ops/jobs/{job_id}/retry" in page
