"""Campaign forms: the admin API (publish, versions, list), the CLI, and /sync/forms/v1/_search (§7.15)."""
import json
import uuid

from click.testing import CliRunner

from models.db import session_scope
from models.digit import store as digit
from tests.factories import bearer, make_user, token_for
from tests.web.digit.support import envelope, household_form, individual_form


def _admin(app, db_session, tenant="default"):
    return bearer(app, make_user(db_session, role="admin", tenant=tenant))


def test_publish_versions_and_refuse_lower_or_equal(app, client, db_session):
    admin = _admin(app, db_session)
    form = household_form(version=1)
    form["version"] = "1"  # text on input, integer on output
    resp = client.post("/admin/forms", json=form, headers=admin)
    assert resp.status_code == 201
    stored = resp.get_json()["form"]
    assert stored["version"] == 1
    assert stored["elements"][1]["validations"][1] == {"name": "max", "attribute": 30}
    for version in (1, 0):
        resp = client.post("/admin/forms", json=household_form(version=version), headers=admin)
        assert resp.status_code in (409, 400)
    resp = client.post("/admin/forms", json=household_form(version=1), headers=admin)
    assert resp.status_code == 409 and resp.get_json()["latest_version"] == 1
    assert client.post("/admin/forms", json=household_form(version=3), headers=admin).status_code == 201
    listed = client.get("/admin/forms?campaignId=CAMP-1", headers=admin).get_json()["forms"]
    assert [f["version"] for f in listed] == [3, 1]
    latest = client.get("/admin/forms?campaignId=CAMP-1&latest=true", headers=admin).get_json()["forms"]
    assert [f["version"] for f in latest] == [3]


def test_publish_needs_admin_and_a_valid_form(app, client, db_session):
    writer = bearer(app, make_user(db_session, role="read-write"))
    assert client.post("/admin/forms", json=household_form(), headers=writer).status_code == 403
    admin = _admin(app, db_session)
    bad = household_form()
    del bad["schema"]
    bad["elements"][0]["validations"].append({"name": "pattern", "attribute": "(["})
    resp = client.post("/admin/forms", json=bad, headers=admin)
    assert resp.status_code == 400
    assert any("schema" in p for p in resp.get_json()["problems"])
    assert any("pattern" in p for p in resp.get_json()["problems"])
    foreign = household_form(tenant="elsewhere")
    assert client.post("/admin/forms", json=foreign, headers=admin).status_code == 404


def _search(client, token, **sync):
    body = {"campaignId": "CAMP-1", "tenantId": "default", **sync}
    return client.post("/sync/forms/v1/_search", json=envelope(body, token))


def test_forms_search_sync_all_and_by_version(app, client, db_session):
    admin = _admin(app, db_session)
    for form in (household_form(1), household_form(2), individual_form(1)):
        assert client.post("/admin/forms", json=form, headers=admin).status_code == 201
    token = token_for(app, make_user(db_session, role="read-only"))
    resp = _search(client, token, syncAll=True, forms=[])
    assert resp.status_code == 200
    forms = resp.get_json()["forms"]
    assert sorted((f["schema"], f["version"]) for f in forms) == [("household", 2), ("individual", 1)]
    assert resp.get_json()["responseInfo"]["status"] == "SUCCESSFUL"
    household = next(f for f in forms if f["schema"] == "household")
    assert set(household) >= {"campaignId", "tenantId", "version", "submitButtonText", "nextPageRoute",
                              "submitPath", "schema", "elements"}
    # Stale copy -> latest; current copy -> left out; unknown schema -> left out; no version -> latest.
    resp = _search(client, token, syncAll=False, forms=[{"schemaId": "household", "version": "1"},
                                                        {"schemaId": "individual", "version": 1},
                                                        {"schemaId": "nope", "version": "1"}])
    assert [(f["schema"], f["version"]) for f in resp.get_json()["forms"]] == [("household", 2)]
    resp = _search(client, token, forms=[{"schemaId": "individual"}])
    assert [(f["schema"], f["version"]) for f in resp.get_json()["forms"]] == [("individual", 1)]
    resp = _search(client, token, syncAll=True, campaignId="OTHER")
    assert resp.get_json()["forms"] == []
    resp = client.post("/sync/forms/v1/_search", json=envelope({"campaignId": "CAMP-1"}, token))
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "NotNull.sync.tenantId"


def test_cli_publishes_forms(settings, real_sessions, tmp_path, monkeypatch):
    from web.cli import main
    from web.digit.cli import group as forms
    main.add_command(forms)
    campaign = f"CLI-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "forms.json"
    path.write_text(json.dumps([household_form(1, campaign=campaign), individual_form(1, campaign=campaign)]))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    runner = CliRunner()
    result = runner.invoke(main, ["forms", "publish", str(path)])
    assert result.exit_code == 0, result.output
    assert "published default/" in result.output
    again = runner.invoke(main, ["forms", "publish", str(path)])
    assert again.exit_code != 0 and "not newer" in again.output
    with session_scope(real_sessions) as s:
        rows = digit.latest_forms(s, tenant_id="default", campaign_id=campaign)
        assert sorted(r.schema for r in rows) == ["household", "individual"]


def test_a_validation_the_server_does_not_understand_is_refused_at_publish(app, client, db_session):
    admin = _admin(app, db_session)
    form = household_form(version=1, campaign=f"C-{uuid.uuid4().hex[:6]}")
    form["elements"][1]["validations"] = [{"name": "max", "value": 20}]        # `value`, not `attribute`
    resp = client.post("/admin/forms", json=form, headers=admin)
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["error"] == "invalid_form"
    [problem] = body["problems"]
    assert "elements[1] (memberCount)" in problem and "'max'" in problem and "attribute" in problem
    for bad in ({"name": "maxi", "attribute": 3}, {"name": "max", "attribute": "lots"},
                {"name": "pattern", "attribute": "("}):
        form["elements"][1]["validations"] = [bad]
        resp = client.post("/admin/forms", json=form, headers=admin)
        assert resp.status_code == 400 and bad["name"] in resp.get_json()["message"], resp.get_json()
    # nothing was published along the way
    assert client.get(f"/admin/forms?campaignId={form['campaignId']}", headers=admin).get_json()["forms"] == []
