"""Synkronus attachments: PUT/GET/HEAD/DELETE /attachments/<id> and POST /attachments/manifest, on real
PostgreSQL and the real blob store (the Flask test client stands in for the network)."""
import hashlib
import io
import uuid

import pytest
from sqlalchemy import text

from models import engine as sync_engine
from models.synkronus import attachments as store
from tests.factories import bearer, make_user


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _payload(size: int = 4096) -> bytes:
    seed = uuid.uuid4().bytes
    return (seed * (size // len(seed) + 1))[:size]


def _put(client, headers, attachment_id, data, content_type="image/jpeg", field="file"):
    return client.put(f"/attachments/{attachment_id}", headers=headers,
                      data={field: (io.BytesIO(data), "upload.bin", content_type)},
                      content_type="multipart/form-data")


def _problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["message"] and body["error"]
    return body


def _counter(db_session, tenant):
    return sync_engine.current_version(db_session, tenant)


@pytest.fixture
def make_app(isolated_sessions, broker, redis_client):
    def build(settings):
        from web.app import create_app
        application = create_app(settings, session_factory=isolated_sessions, celery_app=broker,
                                 redis_client=redis_client)
        application.testing = True
        return application
    return build


def test_put_get_head_round_trip(app, client, db_session):
    tenant = _tenant()
    h = bearer(app, make_user(db_session, tenant=tenant))
    data = _payload(10_000)
    r = _put(client, h, "photo-1.jpg", data)
    assert r.status_code == 200 and r.get_json()["status"] == "success"
    sha = hashlib.sha256(data).hexdigest()
    assert r.get_json()["sha256"] == sha and r.get_json()["size"] == len(data)

    got = client.get("/attachments/photo-1.jpg", headers=h)
    assert got.status_code == 200 and got.data == data
    assert got.mimetype == "application/octet-stream"
    assert got.headers["Content-Disposition"] == "attachment; filename=photo-1.jpg"
    assert got.headers["ETag"] == f'"{sha}"'

    head = client.head("/attachments/photo-1.jpg", headers=h)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == str(len(data)) and head.headers["ETag"] == f'"{sha}"'
    missing = client.head("/attachments/nope.jpg", headers=h)
    assert missing.status_code == 404 and missing.data == b""
    _problem(client.get("/attachments/nope.jpg", headers=h), 404)


def test_a_file_of_several_megabytes_streams_through(app, client, db_session):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    data = _payload(5 * 1024 * 1024 + 17)
    r = _put(client, h, "big.bin", data)
    assert r.status_code == 200 and r.get_json()["size"] == len(data)
    assert client.get("/attachments/big.bin", headers=h).data == data


def test_range_resumes_a_download_and_if_none_match_is_304(app, client, db_session):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    data = _payload(5000)
    assert _put(client, h, "a.bin", data).status_code == 200
    part = client.get("/attachments/a.bin", headers={**h, "Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.data == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    rest = client.get("/attachments/a.bin", headers={**h, "Range": "bytes=4000-"})
    assert rest.status_code == 206 and rest.data == data[4000:]
    etag = part.headers["ETag"]
    assert client.get("/attachments/a.bin", headers={**h, "If-None-Match": etag}).status_code == 304
    past = client.get("/attachments/a.bin", headers={**h, "Range": "bytes=9000-9999"})
    assert past.status_code == 416 and past.mimetype == "application/problem+json"


def test_attachments_are_immutable_and_same_bytes_are_stored_once(app, client, db_session, settings):
    tenant = _tenant()
    h = bearer(app, make_user(db_session, tenant=tenant))
    data = _payload()
    assert _put(client, h, "one.jpg", data).status_code == 200
    version = _counter(db_session, tenant)
    again = _put(client, h, "one.jpg", _payload())
    assert _problem(again, 409)["message"] == "Attachment already exists"
    assert _counter(db_session, tenant) == version  # a refused upload takes no version
    assert client.get("/attachments/one.jpg", headers=h).data == data  # the first bytes stay

    twin = _put(client, h, "two.jpg", data)
    assert twin.status_code == 200 and twin.get_json()["deduplicated"] is True
    assert "deduplicated" not in _put(client, h, "three.jpg", _payload()).get_json()
    sha = hashlib.sha256(data).hexdigest()
    blob_dir = settings.blob_dir / sha[:2] / sha[2:4]
    assert [p.name for p in blob_dir.iterdir() if p.name == sha] == [sha]
    assert db_session.execute(text("SELECT count(*) FROM blobs WHERE sha256 = :s"), {"s": sha}).scalar() == 1


def test_create_bumps_the_tenant_version_in_the_same_transaction(app, client, db_session):
    tenant = _tenant()
    h = bearer(app, make_user(db_session, tenant=tenant))
    before = _counter(db_session, tenant)
    r = _put(client, h, "v.jpg", _payload())
    version = r.get_json()["version"]
    assert version == before + 1 == _counter(db_session, tenant)
    op = db_session.execute(text("""SELECT operation, version, client_id FROM synkronus_attachment_operations
                                     WHERE tenant_id = :t AND attachment_id = 'v.jpg'"""), {"t": tenant}).one()
    assert tuple(op) == ("create", version, None)
    # A pull sees the same counter move.
    pulled = client.post("/sync/pull", json={"client_id": "c1", "since": {"version": 0}}, headers=h).get_json()
    assert pulled["current_version"] == version

    # A create that fails (the id is taken) rolls back its counter bump with it.
    nested = db_session.begin_nested()
    with pytest.raises(store.AttachmentExists):
        store.create(db_session, tenant, "v.jpg", sha256="0" * 64, size=1, content_type="x/y", actor="t")
    nested.rollback()
    assert _counter(db_session, tenant) == version
    assert db_session.execute(text("SELECT count(*) FROM synkronus_attachment_operations WHERE tenant_id = :t"),
                              {"t": tenant}).scalar() == 1


def test_another_tenants_attachment_is_404_like_an_unknown_one(app, client, db_session):
    h_a = bearer(app, make_user(db_session, tenant=_tenant()))
    h_b = bearer(app, make_user(db_session, tenant=_tenant(), role="admin"))
    assert _put(client, h_a, "secret.jpg", _payload()).status_code == 200
    theirs = client.get("/attachments/secret.jpg", headers=h_b)
    unknown = client.get("/attachments/never-was.jpg", headers=h_b)
    assert theirs.status_code == unknown.status_code == 404
    body_t, body_u = theirs.get_json(), unknown.get_json()
    assert body_t == body_u
    assert client.head("/attachments/secret.jpg", headers=h_b).status_code == 404
    assert client.get("/attachments/secret.jpg", headers={**h_b, "Range": "bytes=0-3"}).status_code == 404
    _problem(client.delete("/attachments/secret.jpg", headers=h_b), 404)
    manifest = client.post("/attachments/manifest", json={"client_id": "c", "since_version": 0}, headers=h_b)
    assert manifest.get_json()["operations"] == []
    # the id is free in the other tenant, and both stay what their owners uploaded
    mine = _payload()
    assert _put(client, h_b, "secret.jpg", mine).status_code == 200
    assert client.get("/attachments/secret.jpg", headers=h_b).data == mine


def test_roles(app, client, db_session):
    tenant = _tenant()
    reader = bearer(app, make_user(db_session, tenant=tenant, role="read-only"))
    writer = bearer(app, make_user(db_session, tenant=tenant, role="read-write"))
    admin = bearer(app, make_user(db_session, tenant=tenant, role="admin"))
    _problem(_put(client, reader, "r.jpg", _payload()), 403)
    assert _put(client, admin, "r.jpg", _payload()).status_code == 200
    assert client.get("/attachments/r.jpg", headers=reader).status_code == 200
    _problem(client.delete("/attachments/r.jpg", headers=writer), 403)
    _problem(client.get("/attachments/r.jpg"), 401)
    _problem(client.post("/attachments/manifest", json={"client_id": "c", "since_version": 0}), 401)


def test_size_cap_is_413_and_leaves_no_blob(make_app, settings, db_session):
    capped = make_app(settings.replace(options={**settings.options, "synkronus": {"max_attachment_bytes": "1000"}}))
    client = capped.test_client()
    tenant = _tenant()
    h = bearer(capped, make_user(db_session, tenant=tenant))
    for size in (1001, 200_000):  # over the file cap; over the body cap as well
        data = _payload(size)
        _problem(_put(client, h, f"big-{size}.bin", data), 413)
        assert not (settings.blob_dir / "x").exists()
        sha = hashlib.sha256(data).hexdigest()
        assert not (settings.blob_dir / sha[:2] / sha[2:4] / sha).exists()
    assert _put(client, h, "small.bin", _payload(1000)).status_code == 200
    assert _counter(db_session, tenant) == 2  # only the accepted one took a version


@pytest.mark.parametrize("raw", ["..", ".", "a%2Fb", "a/b", "a%5Cb", "bad%00id", "tab%09id", "x" * 256, "%7F"])
def test_hostile_ids_are_400_in_the_envelope(app, client, db_session, raw):
    h = bearer(app, make_user(db_session, tenant=_tenant(), role="admin"))
    for response in (_put(client, h, raw, b"abc"), client.get(f"/attachments/{raw}", headers=h),
                     client.delete(f"/attachments/{raw}", headers=h)):
        assert 400 <= response.status_code < 500, (raw, response.status_code)
        assert response.mimetype == "application/problem+json"
        assert "psycopg" not in response.get_data(as_text=True)


def test_hostile_upload_bodies_are_4xx(app, client, db_session):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    assert _problem(client.put("/attachments/x.jpg", headers=h, data=b"raw bytes",
                               content_type="application/octet-stream"), 400)["message"] == "file is required"
    _problem(_put(client, h, "y.jpg", b"abc", field="other"), 400)
    broken = client.put("/attachments/z.jpg", headers=h, data=b"--xx\r\nContent-Disposition: form-data; name=\"file\"",
                        content_type="multipart/form-data; boundary=xx")
    assert 400 <= broken.status_code < 500
    no_boundary = client.put("/attachments/z.jpg", headers=h, data=b"abc", content_type="multipart/form-data")
    assert 400 <= no_boundary.status_code < 500
    _problem(_put(client, h, "w.jpg", b"abc", content_type="image/jp\x00eg"), 400)
    assert client.head("/attachments/z.jpg", headers=h).status_code == 404


def test_manifest_lists_latest_operation_per_attachment(app, client, db_session):
    tenant = _tenant()
    admin = bearer(app, make_user(db_session, tenant=tenant, role="admin"))
    empty = client.post("/attachments/manifest", json={"client_id": "c1", "since_version": 0}, headers=admin)
    assert empty.status_code == 200
    assert empty.get_json() == {"current_version": 1, "operations": [], "total_download_size": 0,
                                "operation_count": {"download": 0, "delete": 0}}
    a, b = _payload(100), _payload(250)
    va = _put(client, admin, "a.jpg", a).get_json()["version"]
    vb = _put(client, admin, "photo%201%23.png", b, content_type="application/octet-stream").get_json()["version"]
    deleted = client.delete("/attachments/a.jpg", headers=admin)
    assert deleted.status_code == 200
    vd = deleted.get_json()["version"]
    assert va < vb < vd == _counter(db_session, tenant)
    assert client.get("/attachments/a.jpg", headers=admin).status_code == 404

    body = client.post("/attachments/manifest", json={"client_id": "c1", "since_version": 0},
                       headers=admin).get_json()
    assert body["current_version"] == vd
    assert body["operations"] == [
        {"operation": "download", "attachment_id": "photo 1#.png",
         "download_url": "http://localhost/attachments/photo%201%23.png", "size": 250, "content_type": "image/png",
         "version": vb, "sha256": hashlib.sha256(b).hexdigest()},
        {"operation": "delete", "attachment_id": "a.jpg", "version": vd},
    ]
    assert body["total_download_size"] == 250 and body["operation_count"] == {"download": 1, "delete": 1}
    later = client.post("/attachments/manifest", json={"client_id": "c1", "since_version": vb}, headers=admin)
    assert [op["operation"] for op in later.get_json()["operations"]] == ["delete"]
    # since_version may be left out (0); a deleted id may be uploaded again
    assert _put(client, admin, "a.jpg", a).status_code == 200
    ops = client.post("/attachments/manifest", json={"client_id": "c1"}, headers=admin).get_json()["operations"]
    assert [(op["attachment_id"], op["operation"]) for op in ops] == [("photo 1#.png", "download"),
                                                                     ("a.jpg", "download")]


def test_manifest_download_url_uses_the_public_base_url(make_app, settings, db_session):
    public = make_app(settings.replace(public_base_url="https://sync.example.org/"))
    client = public.test_client()
    h = bearer(public, make_user(db_session, tenant=_tenant()))
    assert _put(client, h, "p.jpg", _payload()).status_code == 200
    ops = client.post("/attachments/manifest", json={"client_id": "c", "since_version": 0},
                      headers=h).get_json()["operations"]
    assert ops[0]["download_url"] == "https://sync.example.org/attachments/p.jpg"


def test_manifest_leaves_out_what_the_client_has(app, client, db_session):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    have, lack = _payload(), _payload(300)
    _put(client, h, "have.jpg", have)
    _put(client, h, "lack.jpg", lack)
    body = client.post("/attachments/manifest", headers=h, json={
        "client_id": "c", "since_version": 0, "have_hashes": [hashlib.sha256(have).hexdigest().upper()]}).get_json()
    assert [op["attachment_id"] for op in body["operations"]] == ["lack.jpg"]
    assert body["total_download_size"] == 300 and body["operation_count"]["download"] == 1


@pytest.mark.parametrize("body", [
    {"since_version": 0}, {"client_id": "", "since_version": 0}, {"client_id": "c", "since_version": -1},
    {"client_id": "c", "since_version": "3"}, {"client_id": "c", "since_version": True},
    {"client_id": "c", "since_version": 2 ** 63}, {"client_id": "c\x00", "since_version": 0},
    {"client_id": "\ud800", "since_version": 0}, {"client_id": "x" * 251, "since_version": 0},
    {"client_id": 5, "since_version": 0}, {"client_id": "c", "have_hashes": "abc"},
    {"client_id": "c", "have_hashes": ["zz"]}, {"client_id": "c", "have_hashes": [None]}, [1, 2],
])
def test_manifest_refuses_bad_requests_with_400(app, client, db_session, body):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    _problem(client.post("/attachments/manifest", json=body, headers=h), 400)


def test_manifest_refuses_a_body_that_is_not_json(app, client, db_session):
    h = bearer(app, make_user(db_session, tenant=_tenant()))
    r = client.post("/attachments/manifest", data=b"{nope", content_type="application/json", headers=h)
    assert 400 <= r.status_code < 500 and r.mimetype == "application/problem+json"


# --- resumable uploads ---------------------------------------------------------------------------------

def _start(client, h, attachment_id, **extra):
    return client.post("/attachments/uploads", json={"attachment_id": attachment_id, **extra}, headers=h)


def test_resumable_upload_resumes_at_the_confirmed_offset(app, client, db_session, settings):
    tenant = _tenant()
    h = bearer(app, make_user(db_session, tenant=tenant))
    data = _payload(300_000)
    started = _start(client, h, "video.mp4", size=len(data))
    assert started.status_code == 201 and started.headers["Upload-Offset"] == "0"
    upload_id = started.get_json()["upload_id"]
    url = f"/attachments/uploads/{upload_id}"
    assert started.headers["Location"] == url
    first = client.patch(url, data=data[:100_000], headers={**h, "Upload-Offset": "0"})
    assert first.status_code == 200 and first.headers["Upload-Offset"] == "100000"
    # a client that lost the answer and resends from 0 is told where to go on
    stale = client.patch(url, data=data[:50_000], headers={**h, "Upload-Offset": "0"})
    assert _problem(stale, 409)["offset"] == 100_000 and stale.headers["Upload-Offset"] == "100000"
    head = client.head(url, headers=h)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "100000"
    early = client.post(f"{url}/finish", json={}, headers=h)
    assert _problem(early, 409)["error"] == "upload_incomplete"
    rest = client.patch(url, data=data[100_000:], headers={**h, "Content-Range": f"bytes 100000-299999/{len(data)}"})
    assert rest.status_code == 200 and rest.get_json()["offset"] == len(data)
    version_before = _counter(db_session, tenant)
    done = client.post(f"{url}/finish", json={"sha256": hashlib.sha256(data).hexdigest()}, headers=h)
    assert done.status_code == 200 and done.get_json()["status"] == "success"
    assert done.get_json()["version"] == version_before + 1 == _counter(db_session, tenant)
    assert client.get("/attachments/video.mp4", headers=h).data == data
    assert not (settings.data_dir / "synkronus-uploads" / f"{upload_id}.part").exists()
    _problem(client.patch(url, data=b"x", headers={**h, "Upload-Offset": str(len(data))}), 409)
    _problem(client.post(f"{url}/finish", json={}, headers=h), 409)
    _problem(_start(client, h, "video.mp4"), 409)  # the attachment exists now


def test_resumable_upload_checks_hash_cap_tenant_and_input(make_app, settings, db_session):
    capped = make_app(settings.replace(options={**settings.options, "synkronus": {"max_attachment_bytes": "1000"}}))
    client = capped.test_client()
    tenant = _tenant()
    h = bearer(capped, make_user(db_session, tenant=tenant))
    other = bearer(capped, make_user(db_session, tenant=_tenant()))
    _problem(_start(client, h, "big.bin", size=1001), 413)
    url = f"/attachments/uploads/{_start(client, h, 'f.bin').get_json()['upload_id']}"
    assert client.patch(url, data=b"a" * 600, headers={**h, "Upload-Offset": "0"}).status_code == 200
    _problem(client.patch(url, data=b"a" * 600, headers={**h, "Upload-Offset": "600"}), 413)
    assert client.head(url, headers=h).headers["Upload-Offset"] == "600"  # the refused chunk left nothing
    for bad in ({"Upload-Offset": "-1"}, {"Upload-Offset": "x"}, {"Content-Range": "bytes nonsense"}, {}):
        _problem(client.patch(url, data=b"a", headers={**h, **bad}), 400)
    _problem(client.patch(url, data=b"a", headers={**h, "Content-Range": "bytes 600-600/5000"}), 413)
    # another tenant's upload is 404 like an unknown or malformed id
    for target in (url, "/attachments/uploads/" + str(uuid.uuid4()), "/attachments/uploads/not-a-uuid"):
        assert client.head(target, headers=other).status_code == 404
        _problem(client.patch(target, data=b"a", headers={**other, "Upload-Offset": "600"}), 404)
        _problem(client.post(f"{target}/finish", json={}, headers=other), 404)
    _problem(client.post(f"{url}/finish", json={"sha256": "0" * 64}, headers=h), 400)
    assert client.head("/attachments/f.bin", headers=h).status_code == 404
    assert _counter(db_session, tenant) == 1
    assert client.delete(url, headers=h).status_code == 204
    _problem(client.patch(url, data=b"a", headers={**h, "Upload-Offset": "600"}), 409)
    for body in ({"attachment_id": "../x"}, {"attachment_id": "a", "size": -1}, {"attachment_id": "a", "size": "1"},
                 {"attachment_id": "a", "content_type": "x\x00"}, {}):
        _problem(client.post("/attachments/uploads", json=body, headers=h), 400)
    reader = bearer(capped, make_user(db_session, tenant=tenant, role="read-only"))
    _problem(_start(client, reader, "r.bin"), 403)


# --- the sweep of unreferenced attachments ----------------------------------------------------------------

def _observe(db_session, tenant, key, data, deleted=False):
    from models.engine import Incoming, apply_chunk
    apply_chunk(db_session, tenant_id=tenant, namespace="synkronus",
                records=[Incoming(position=0, key=key, record_type="survey", data=data, deleted=deleted)])
    db_session.commit()


def _backdate(db_session, tenant, hours=2):
    db_session.execute(text("UPDATE synkronus_attachments SET unreferenced_since = now() - make_interval(hours => :h) "
                            "WHERE tenant_id = :t"), {"t": tenant, "h": hours})
    db_session.commit()


def test_sweep_removes_only_attachments_unreferenced_for_the_grace_time(app, client, db_session):
    tenant = _tenant()
    h = bearer(app, make_user(db_session, tenant=tenant))
    for name in ("kept.jpg", "loose.jpg", "of-deleted.jpg", "fresh.jpg"):
        assert _put(client, h, name, _payload()).status_code == 200
    _observe(db_session, tenant, "o1", {"photos": [{"file": "kept.jpg"}], "note": "not loose.jpg"})
    _observe(db_session, tenant, "o2", {"photo": "of-deleted.jpg"}, deleted=True)

    assert store.sweep(db_session, tenant, grace_seconds=3600) == []  # first seen unreferenced now: wait
    _backdate(db_session, tenant)  # as if everything had been unreferenced for two hours, even `kept.jpg`
    db_session.execute(text("UPDATE synkronus_attachments SET unreferenced_since = NULL "
                            "WHERE tenant_id = :t AND attachment_id = 'fresh.jpg'"), {"t": tenant})
    before = _counter(db_session, tenant)
    gone = store.sweep(db_session, tenant, grace_seconds=3600)
    db_session.commit()
    assert gone == ["loose.jpg", "of-deleted.jpg"]  # never one a live record names; a fresh one waits
    assert _counter(db_session, tenant) == before + 2
    for name, status in (("kept.jpg", 200), ("fresh.jpg", 200), ("loose.jpg", 404), ("of-deleted.jpg", 404)):
        assert client.head(f"/attachments/{name}", headers=h).status_code == status
    ops = client.post("/attachments/manifest", json={"client_id": "c", "since_version": before},
                      headers=h).get_json()["operations"]
    assert [(op["operation"], op["attachment_id"], op["version"]) for op in ops] == [
        ("delete", "loose.jpg", before + 1), ("delete", "of-deleted.jpg", before + 2)]
    kept = db_session.execute(text("SELECT unreferenced_since FROM synkronus_attachments WHERE tenant_id = :t "
                                   "AND attachment_id = 'kept.jpg'"), {"t": tenant}).scalar()
    assert kept is None  # a reference clears the mark
    # once its record goes, the kept one waits out the grace time too
    _observe(db_session, tenant, "o1", {"photos": []})
    assert store.sweep(db_session, tenant, grace_seconds=3600) == []
    _backdate(db_session, tenant)
    assert store.sweep(db_session, tenant, grace_seconds=3600) == ["fresh.jpg", "kept.jpg"]
