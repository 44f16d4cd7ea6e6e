"""The three DIGIT sync endpoints at the HTTP level (the job itself runs in the worker tests)."""
from sqlalchemy import select

from models.tables import Job
from tests.factories import make_user, token_for
from tests.web.digit.support import CAMPAIGN, envelope, household, json_document, upload_bytes


def _create(client, token, file_ref, campaign=CAMPAIGN, tenant="default", **kw):
    return client.post("/sync/file/v1/_create",
                       json=envelope({"campaignId": campaign, "tenantId": tenant, "file": file_ref,
                                      "auditDetails": {}}, token, **kw))


def test_create_answers_at_once_with_sync_id_and_enqueues_after_commit(client, broker, writer, writer_headers,
                                                                         writer_token):
    stored = upload_bytes(client, writer_headers, json_document([household(1)]))
    resp = _create(client, writer_token, stored["fileStoreId"], msg_id="msg-1")
    assert resp.status_code == 200
    body = resp.get_json()
    info = body["responseInfo"]
    assert info["status"] == "SUCCESSFUL" and info["msgId"] == "msg-1" and info["resMsgId"] == "msg-1"
    assert info["apiId"] == "hcm" and info["ver"] == "1.0" and info["ts"] > 10**12  # milliseconds
    sync = body["sync"]
    assert sync["status"] == "CREATED" and sync["campaignId"] == CAMPAIGN and sync["tenantId"] == "default"
    assert sync["file"] == stored["fileStoreId"] and sync["createdBy"] == str(writer.id)
    assert 10**9 < sync["createdAt"] < 10**11  # epoch seconds (§7.13)
    assert broker.sent == [("ingest.run_job", [sync["syncId"]], "ingest")]


def test_same_file_twice_is_the_same_sync(client, broker, db_session, writer_headers, writer_token):
    data = json_document([household(2)])
    first = upload_bytes(client, writer_headers, data)
    second = upload_bytes(client, writer_headers, data)  # another filestore id, same bytes
    a = _create(client, writer_token, first["fileStoreId"]).get_json()["sync"]
    b = _create(client, writer_token, f"http://localhost/filestore/v1/files/{second['fileStoreId']}/content",
                key="RequestInfo").get_json()["sync"]
    assert a["syncId"] == b["syncId"]
    assert len(broker.sent) == 1
    jobs = db_session.execute(select(Job).where(Job.kind == "digit.sync_file", Job.payload_hash == first["sha256"])).scalars().all()
    assert len(jobs) == 1
    other_campaign = _create(client, writer_token, first["fileStoreId"], campaign="CAMP-2").get_json()["sync"]
    assert other_campaign["syncId"] != a["syncId"]


def test_own_filestore_url_is_accepted_and_external_urls_are_refused(client, broker, writer_headers, writer_token):
    stored = upload_bytes(client, writer_headers, json_document([household(3)]))
    url = client.get(f"/filestore/v1/files/url?tenantId=default&fileStoreIds={stored['fileStoreId']}",
                     headers=writer_headers).get_json()[stored["fileStoreId"]]
    assert _create(client, writer_token, url).status_code == 200
    for bad in (f"https://fileserver-url.com/filestore/v1/files/{stored['fileStoreId']}",
                "https://fileserver-url.com/id", "file:///etc/passwd", "ftp://localhost/x",
                "http://169.254.169.254/latest/meta-data/"):
        resp = _create(client, writer_token, bad)
        assert resp.status_code == 400, bad
        assert resp.get_json()["Errors"][0]["code"] == "INVALID_FILE_URL"
    assert len(broker.sent) == 1


def test_unknown_file_and_missing_fields_are_digit_400s(client, writer_token):
    resp = _create(client, writer_token, "4b0c3e1e-8d3e-4f1e-9c55-2d1a3c9b7f10")
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "INVALID_FILE"
    resp = client.post("/sync/file/v1/_create", json=envelope({"campaignId": "C", "file": "x"}, writer_token))
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "NotNull.sync.tenantId"
    resp = client.post("/sync/file/v1/_create", data="{not json", content_type="application/json")
    body = resp.get_json()
    assert resp.status_code == 400 and body == {"ResponseInfo": None, "Errors": [
        {"code": "JsonParseException", "message": body["Errors"][0]["message"], "description": None, "params": None}]}
    resp = client.post("/sync/file/v1/_create", data="", content_type="application/json")
    assert resp.get_json()["Errors"][0]["code"] == "MissingJsonException"
    resp = client.post("/sync/file/v1/_create", json={"requestInfo": {"authToken": writer_token}})
    assert resp.get_json()["Errors"][0]["code"] == "NotNull.sync"


def test_auth_is_required_and_checked(client):
    resp = client.post("/sync/file/v1/_create", json=envelope({"campaignId": "C", "tenantId": "default", "file": "x"}))
    assert resp.status_code == 401
    assert resp.get_json()["Errors"][0]["code"] == "InvalidAccessTokenException"
    resp = client.post("/sync/file/v1/_create",
                       json=envelope({"campaignId": "C", "tenantId": "default", "file": "x"}, "not-a-token"))
    assert resp.status_code == 401 and resp.get_json()["ResponseInfo"] is None


def test_status_search_and_other_tenants_sync_is_not_found(app, client, db_session, writer_headers, writer_token):
    stored = upload_bytes(client, writer_headers, json_document([household(4)]))
    sync_id = _create(client, writer_token, stored["fileStoreId"]).get_json()["sync"]["syncId"]
    resp = client.post("/sync/file/status/v1/_search",
                       json=envelope({"campaignId": CAMPAIGN, "tenantId": "default", "syncId": sync_id}, writer_token))
    assert resp.status_code == 200
    sync = resp.get_json()["sync"]
    assert sync["syncId"] == sync_id and sync["status"] == "CREATED"
    assert sync["progress"] == {"done": 0, "total": None, "percent": None} and sync["errors"] == []

    stranger = token_for(app, make_user(db_session, tenant="other"))
    for tenant in ("other", "default"):
        resp = client.post("/sync/file/status/v1/_search",
                           json=envelope({"tenantId": tenant, "syncId": sync_id}, stranger))
        assert resp.status_code == 400
        assert resp.get_json()["Errors"][0]["code"] == "SYNC_NOT_FOUND"
    resp = client.post("/sync/file/status/v1/_search",
                       json=envelope({"tenantId": "default", "syncId": "no-such-id"}, writer_token))
    assert resp.get_json()["Errors"][0]["code"] == "SYNC_NOT_FOUND"
    resp = client.post("/sync/file/status/v1/_search",
                       json=envelope({"tenantId": "default", "syncId": sync_id, "campaignId": "OTHER"}, writer_token))
    assert resp.get_json()["Errors"][0]["code"] == "SYNC_NOT_FOUND"


def test_hierarchical_tenant_user_may_sync_in_a_child_tenant(app, client, db_session):
    from tests.factories import bearer
    user = make_user(db_session, tenant="pb")
    stored = upload_bytes(client, bearer(app, user), json_document([household(5)]), tenant="pb.amritsar")
    resp = _create(client, token_for(app, user), stored["fileStoreId"], tenant="pb.amritsar")
    assert resp.status_code == 200 and resp.get_json()["sync"]["tenantId"] == "pb.amritsar"
    resp = _create(client, token_for(app, user), stored["fileStoreId"], tenant="mz")
    assert resp.get_json()["Errors"][0]["code"] == "INVALID_TENANT_ID"
