"""Resumable chunked upload: offsets, a dropped link mid-chunk, resume, and the same hash as a plain upload."""
import hashlib
import io
import os

from tests.web.digit.support import upload_bytes


def _start(client, headers, size=None):
    body = {"tenantId": "default", "filename": "big.ndjson"}
    if size is not None:
        body["size"] = size
    resp = client.post("/filestore/v1/uploads", headers=headers, json=body)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["uploadId"]


def _patch(client, headers, upload_id, offset, data, **kw):
    return client.patch(f"/filestore/v1/uploads/{upload_id}", data=data,
                        headers={**headers, "Upload-Offset": str(offset),
                                 "Content-Type": "application/offset+octet-stream"}, **kw)


def _offset(client, headers, upload_id) -> int:
    resp = client.head(f"/filestore/v1/uploads/{upload_id}", headers=headers)
    assert resp.status_code == 200
    return int(resp.headers["Upload-Offset"])


def test_resumed_upload_gives_the_same_hash_as_an_uninterrupted_one(client, writer_headers):
    data = os.urandom(3 * 1024 * 1024 + 123)
    plain = upload_bytes(client, writer_headers, data, name="big.ndjson")

    upload_id = _start(client, writer_headers, size=len(data))
    first = 1024 * 1024
    assert _patch(client, writer_headers, upload_id, 0, data[:first]).get_json()["offset"] == first
    # The link drops in the middle of the second chunk: the request body stops short of its length.
    second_end = 2 * 1024 * 1024
    cut = first + 300_000
    resp = client.patch(f"/filestore/v1/uploads/{upload_id}", input_stream=io.BytesIO(data[first:cut]),
                        headers={**writer_headers, "Upload-Offset": str(first),
                                 "Content-Length": str(second_end - first)})
    assert resp.status_code == 200
    confirmed = _offset(client, writer_headers, upload_id)
    assert confirmed == cut  # what arrived is kept
    # Resume exactly at the confirmed offset.
    assert _patch(client, writer_headers, upload_id, confirmed, data[confirmed:]).status_code == 200
    done = client.post(f"/filestore/v1/uploads/{upload_id}/_finish", headers=writer_headers,
                       json={"sha256": hashlib.sha256(data).hexdigest()})
    assert done.status_code == 201
    resumed = done.get_json()["files"][0]
    assert resumed["sha256"] == plain["sha256"] == hashlib.sha256(data).hexdigest()
    assert resumed["size"] == len(data)
    # Finishing again answers the same file.
    again = client.post(f"/filestore/v1/uploads/{upload_id}/_finish", headers=writer_headers)
    assert again.get_json()["files"][0]["fileStoreId"] == resumed["fileStoreId"]


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_confirmed_offset(client, writer_headers):
    upload_id = _start(client, writer_headers)
    _patch(client, writer_headers, upload_id, 0, b"a" * 100)
    resp = _patch(client, writer_headers, upload_id, 50, b"b" * 10)
    assert resp.status_code == 409
    assert resp.headers["Upload-Offset"] == "100"
    assert resp.get_json()["Errors"][0]["code"] == "OFFSET_MISMATCH"
    # Content-Range works too.
    resp = client.put(f"/filestore/v1/uploads/{upload_id}", data=b"c" * 20,
                      headers={**writer_headers, "Content-Range": "bytes 100-119/120"})
    assert resp.status_code == 200 and resp.get_json()["offset"] == 120
    got = client.get(f"/filestore/v1/uploads/{upload_id}", headers=writer_headers).get_json()
    assert got["offset"] == 120 and got["size"] == 120


def test_finish_before_all_bytes_arrived_is_refused(client, writer_headers):
    upload_id = _start(client, writer_headers, size=1000)
    _patch(client, writer_headers, upload_id, 0, b"x" * 10)
    resp = client.post(f"/filestore/v1/uploads/{upload_id}/_finish", headers=writer_headers)
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "UPLOAD_INCOMPLETE"
    too_much = _patch(client, writer_headers, upload_id, 10, b"x" * 2000)
    assert too_much.status_code == 413
    assert _offset(client, writer_headers, upload_id) == 10


def test_checksum_mismatch_is_refused(client, writer_headers):
    upload_id = _start(client, writer_headers)
    _patch(client, writer_headers, upload_id, 0, b"payload")
    resp = client.post(f"/filestore/v1/uploads/{upload_id}/_finish", headers=writer_headers,
                       json={"sha256": "0" * 64})
    assert resp.status_code == 400 and resp.get_json()["Errors"][0]["code"] == "CHECKSUM_MISMATCH"


def test_other_tenant_cannot_see_an_upload(app, client, db_session, writer_headers):
    from tests.factories import bearer, make_user
    upload_id = _start(client, writer_headers)
    other = bearer(app, make_user(db_session, tenant="elsewhere"))
    resp = client.head(f"/filestore/v1/uploads/{upload_id}", headers=other)
    assert resp.status_code == 400
