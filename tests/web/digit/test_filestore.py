"""Filestore: multipart upload into the blob store, download URLs, download, size cap, auth and tenants."""
import hashlib
import io

from web.app import create_app
from tests.factories import bearer, make_user
from tests.web.digit.support import upload_bytes


def test_upload_streams_to_the_blob_store_and_answers_filestore_ids(app, client, writer_headers):
    data = b'{"entities": {}}'
    resp = client.post("/filestore/v1/files", headers=writer_headers, content_type="multipart/form-data",
                       data={"tenantId": "default", "file": [(io.BytesIO(data), "a.json"), (io.BytesIO(b"xyz"), "b.txt")]})
    assert resp.status_code == 201
    files = resp.get_json()["files"]
    assert [f["tenantId"] for f in files] == ["default", "default"]
    assert files[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert app.extensions["fieldsync_blobs"].path(files[0]["sha256"]).read_bytes() == data
    assert files[0]["fileStoreId"] != files[1]["fileStoreId"]


def test_url_search_gives_working_signed_urls_served_by_fieldsync(client, writer_headers):
    stored = upload_bytes(client, writer_headers, b"hello filestore", name="hello.txt")
    resp = client.get(f"/filestore/v1/files/url?tenantId=default&fileStoreIds={stored['fileStoreId']},nope",
                      headers=writer_headers)
    assert resp.status_code == 200
    body = resp.get_json()
    assert [f["id"] for f in body["fileStoreIds"]] == [stored["fileStoreId"]]
    url = body[stored["fileStoreId"]]
    assert "/filestore/v1/files/" in url and "signature=" in url
    path = url[url.index("/filestore/"):]
    download = client.get(path)  # no header needed: the URL is signed
    assert download.status_code == 200 and download.data == b"hello filestore"
    tampered = client.get(path.replace("signature=", "signature=0"))
    assert tampered.status_code == 401
    assert tampered.get_json()["Errors"][0]["code"] == "InvalidAccessTokenException"
    by_query = client.get(f"/filestore/v1/files/id?tenantId=default&fileStoreId={stored['fileStoreId']}",
                          headers=writer_headers)
    assert by_query.data == b"hello filestore"


def test_other_tenants_files_are_invisible(app, client, db_session, writer_headers):
    stored = upload_bytes(client, writer_headers, b"mine")
    other = bearer(app, make_user(db_session, tenant="other"))
    resp = client.get(f"/filestore/v1/files/url?tenantId=default&fileStoreIds={stored['fileStoreId']}", headers=other)
    assert resp.get_json()["fileStoreIds"] == []
    resp = client.get(f"/filestore/v1/files/{stored['fileStoreId']}/content", headers=other)
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "EG_FILESTORE_NOT_FOUND"


def test_missing_token_is_a_digit_401(client):
    resp = client.post("/filestore/v1/files", data={"tenantId": "default"})
    assert resp.status_code == 401
    body = resp.get_json()
    assert body["ResponseInfo"] is None and body["Errors"][0]["code"] == "InvalidAccessTokenException"


def test_read_only_user_may_not_upload(app, client, db_session):
    reader = bearer(app, make_user(db_session, role="read-only"))
    resp = client.post("/filestore/v1/files", headers=reader, content_type="multipart/form-data",
                       data={"tenantId": "default", "file": (io.BytesIO(b"x"), "x")})
    assert resp.status_code == 403 and resp.get_json()["ResponseInfo"] is None


def test_oversize_upload_is_413_in_the_digit_envelope(settings, isolated_sessions, broker, redis_client, db_session):
    small = create_app(settings.replace(max_upload_bytes=1000), session_factory=isolated_sessions,
                       celery_app=broker, redis_client=redis_client)
    headers = bearer(small, make_user(db_session))
    resp = small.test_client().post("/filestore/v1/files", headers=headers, content_type="multipart/form-data",
                                    data={"tenantId": "default", "file": (io.BytesIO(b"x" * 5000), "big.json")})
    assert resp.status_code == 413
    body = resp.get_json()
    assert body["ResponseInfo"] is None and body["Errors"][0]["code"] == "PayloadTooLargeException"


def test_missing_tenant_and_missing_file_are_400(client, writer_headers):
    resp = client.post("/filestore/v1/files", headers=writer_headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(b"x"), "x")})
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "NotNull.tenantId"
    resp = client.post("/filestore/v1/files", headers=writer_headers, content_type="multipart/form-data",
                       data={"tenantId": "default"})
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "EG_FILESTORE_INVALID_INPUT"
