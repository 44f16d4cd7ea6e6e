"""Hostile input on the DIGIT endpoints: a NUL or a lone surrogate, megabyte or object file names and
byte counts beyond a bigint answer a 4xx in DIGIT's shape ({"ResponseInfo": null, "Errors": [...]}),
never a 5xx."""
import io
import json

import pytest

from tests.factories import bearer, make_user
from tests.web.digit.support import CAMPAIGN, envelope, household, household_form, json_document, upload_bytes


def _digit_error(response, status=400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert set(body) == {"ResponseInfo", "Errors"} and body["ResponseInfo"] is None, body
    (error,) = body["Errors"]
    assert set(error) == {"code", "message", "description", "params"}, error
    assert len(response.get_data()) < 3000
    return error


def _raw(sync_json: bytes, token: str) -> bytes:
    return b'{"RequestInfo": {"authToken": "' + token.encode() + b'"}, "sync": ' + sync_json + b"}"


@pytest.mark.parametrize("campaign", [b'"C\\u0000"', b'"C\\ud800"'], ids=["nul", "lone_surrogate"])
def test_a_campaign_id_that_cannot_be_stored_is_400(client, writer_headers, writer_token, campaign):
    file_id = upload_bytes(client, writer_headers, json_document([household(1)]))["fileStoreId"]
    sync = b'{"tenantId": "default", "campaignId": ' + campaign + b', "file": "' + file_id.encode() + b'"}'
    for path in ("/sync/file/v1/_create", "/sync/forms/v1/_search"):
        resp = client.post(path, data=_raw(sync, writer_token), content_type="application/json")
        error = _digit_error(resp)
        assert error["code"].endswith("sync.campaignId"), error


def test_audit_details_that_cannot_be_stored_are_400(client, writer_headers, writer_token):
    file_id = upload_bytes(client, writer_headers, json_document([household(2)]))["fileStoreId"]
    for audit in (b'{"by": "a\\u0000"}', b'{"\\ud800": 1}', b'{"n": NaN}', b'{"d": ' + b"[" * 500 + b"]" * 500 + b"}"):
        sync = (b'{"tenantId": "default", "campaignId": "C1", "file": "' + file_id.encode() +
                b'", "auditDetails": ' + audit + b"}")
        _digit_error(client.post("/sync/file/v1/_create", data=_raw(sync, writer_token),
                                 content_type="application/json"))


@pytest.mark.parametrize("name", ["a\x00b.json", "n" * 100_000], ids=["nul", "100KB"])
def test_an_upload_file_name_that_cannot_be_stored_is_400(client, writer_headers, name):
    resp = client.post("/filestore/v1/files", headers=writer_headers, content_type="multipart/form-data",
                       data={"tenantId": "default", "file": (io.BytesIO(b"{}"), name)})
    _digit_error(resp)
    resp = client.post("/filestore/v1/files", headers=writer_headers, content_type="multipart/form-data",
                       data={"tenantId": "default", "module": name, "file": (io.BytesIO(b"{}"), "ok.json")})
    _digit_error(resp)


@pytest.mark.parametrize("filename", [b'"a\\u0000b"', b'"' + b"f" * 1_000_000 + b'"', b'{"a": 1}', b'"\\udfff"'],
                         ids=["nul", "megabyte", "object", "lone_surrogate"])
def test_starting_an_upload_with_a_bad_file_name_is_400(client, writer_headers, filename):
    resp = client.post("/filestore/v1/uploads", headers=writer_headers, content_type="application/json",
                       data=b'{"tenantId": "default", "filename": ' + filename + b"}")
    _digit_error(resp)


def _start(client, headers) -> str:
    resp = client.post("/filestore/v1/uploads", headers=headers, json={"tenantId": "default"})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["uploadId"]


def test_byte_counts_beyond_a_bigint_are_refused(client, writer_headers):
    upload = _start(client, writer_headers)
    path = f"/filestore/v1/uploads/{upload}"
    resp = client.put(path, data=b"ab", headers={**writer_headers, "Content-Range": "bytes 0-1/" + "9" * 40})
    assert 400 <= resp.status_code < 500
    _digit_error(resp, resp.status_code)
    for offset in ("9" * 5000, "²", "9" * 19):
        _digit_error(client.patch(path, data=b"ab", headers={**writer_headers, "Upload-Offset": offset}))
    # the upload is untouched and still takes its bytes
    resp = client.patch(path, data=b"ab", headers={**writer_headers, "Upload-Offset": "0"})
    assert resp.status_code == 200 and resp.get_json()["offset"] == 2


def test_a_signed_download_link_with_odd_text_is_401(client, writer_headers):
    file_id = upload_bytes(client, writer_headers, b"{}")["fileStoreId"]
    resp = client.get(f"/filestore/v1/files/{file_id}/content?tenantId=default&expires=99999999999&signature=%C3%A9")
    assert resp.status_code == 401


@pytest.fixture
def admin_headers(app, db_session):
    return bearer(app, make_user(db_session, role="admin", tenant="default"))


@pytest.mark.parametrize("change", [{"version": "99999999999"}, {"version": 2 ** 40}, {"version": "²"},
                                    {"campaignId": "C" * 1000}, {"schema": "s\x00"},
                                    {"submitButtonText": "\ud800"}])
def test_publishing_a_form_that_cannot_be_stored_is_400(client, admin_headers, change):
    body = {**household_form(), **change}
    resp = client.post("/admin/forms", headers=admin_headers, content_type="application/json",
                       data=json.dumps(body).encode())
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["error"] == "invalid_form"


def test_listing_forms_with_a_nul_filter_is_400(client, admin_headers):
    for query in ("campaignId=a%00", "schema=%00", "tenantId=" + "t" * 1000):
        resp = client.get(f"/admin/forms?{query}", headers=admin_headers)
        assert resp.status_code == 400 and resp.get_json()["error"] == "bad_request", resp.get_data(as_text=True)


def test_a_forms_search_with_odd_schema_ids_and_versions_is_not_a_crash(client, writer_token):
    deep = [[[[[1]]]]]
    for i in range(50):
        deep = [deep]
    requested = [{"schemaId": "household", "version": deep}, {"schemaId": 7, "version": "²"}]
    resp = client.post("/sync/forms/v1/_search", json=envelope({"tenantId": "default", "campaignId": CAMPAIGN,
                                                               "forms": requested}, writer_token))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    resp = client.post("/sync/forms/v1/_search", json=envelope({"tenantId": "default", "campaignId": CAMPAIGN,
                                                               "forms": [{"schemaId": "a\x00"}]}, writer_token))
    _digit_error(resp)


def test_a_chunked_chunk_of_exactly_the_upload_cap_is_taken_and_one_byte_more_is_413(app, client, writer_headers):
    cap = 100_000
    app.config["FIELDSYNC_SETTINGS"] = app.config["FIELDSYNC_SETTINGS"].replace(max_upload_bytes=cap)

    def patch(upload, data):
        # as gunicorn hands over a chunked body: no Content-Length, wsgi.input_terminated set
        return client.patch(f"/filestore/v1/uploads/{upload}", headers={
            **writer_headers, "Upload-Offset": "0", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input": io.BytesIO(data), "wsgi.input_terminated": True})

    over = _start(client, writer_headers)
    resp = patch(over, b"y" * (cap + 1))
    _digit_error(resp, 413)
    assert client.head(f"/filestore/v1/uploads/{over}", headers=writer_headers).headers["Upload-Offset"] == "0"
    exact = _start(client, writer_headers)
    resp = patch(exact, b"y" * cap)
    assert resp.status_code == 200 and resp.get_json()["offset"] == cap, resp.get_data(as_text=True)[:300]
