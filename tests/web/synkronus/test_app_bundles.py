"""Synkronus app bundles: push (structural and hostile-archive checks, every problem listed, stored as
NNNN, not active), versions, switch, manifest and download (ETag, 304, %2F, preview), changes, the
versions kept, and `fieldsync synkronus bundle`."""
import hashlib
import io
import json
import os
import struct
import uuid
import warnings
import zipfile

import pytest
from click.testing import CliRunner

from models.synkronus.tables import SynkronusBundleVersion
from tests.factories import bearer, make_user

SURVEY_SCHEMA = {"type": "object", "properties": {
    "core_id": {"type": "string"}, "name": {"type": "string", "x-renderer": "text"},
    "age": {"type": "integer", "default": 0}, "photo": {"type": "string", "format": "photo",
                                                        "x-renderer": "camera"}},
    "required": ["core_id"]}
SURVEY_UI = {"type": "VerticalLayout", "elements": [{"type": "Control", "scope": "#/properties/name"}]}


def bundle_files(**changes) -> dict:
    files = {"app/index.html": b"<html>app</html>", "app/main.js": b"console.log(1)",
             "forms/survey/schema.json": json.dumps(SURVEY_SCHEMA).encode(),
             "forms/survey/ui.json": json.dumps(SURVEY_UI).encode(),
             "renderers/camera/renderer.jsx": b"export default () => null"}
    for name, data in changes.items():
        path = name.replace("__", "/")  # app__main_js: app/main.js
        if "." not in path and "_" in path.rsplit("/", 1)[-1]:
            head, _, ext = path.rpartition("_")
            path = f"{head}.{ext}"
        if data is None:
            files.pop(path, None)
        else:
            files[path] = data if isinstance(data, bytes) else json.dumps(data).encode()
    return files


def zip_of(files: dict, dirs=()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in dirs:
            zf.writestr(zipfile.ZipInfo(name), b"")
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def zip_with(infos_and_data) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in infos_and_data:
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.fixture
def admin(db_session):
    return make_user(db_session, role="admin", tenant=f"t-{uuid.uuid4().hex[:8]}")


def push(client, headers, data: bytes, field="bundle"):
    return client.post("/app-bundle/push", headers=headers, content_type="multipart/form-data",
                       data={field: (io.BytesIO(data), "bundle.zip")})


def pushed(client, headers, data: bytes) -> str:
    r = push(client, headers, data)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["manifest"]["version"]


def _problem(r, status=400):
    assert r.status_code == status, r.get_data(as_text=True)
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# --- push -----------------------------------------------------------------------------------------

def test_push_stores_version_0001_not_active(app, client, admin, db_session, settings):
    h = bearer(app, admin)
    data = zip_of(bundle_files())
    r = push(client, h, data)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert "0001" in body["message"]
    manifest = body["manifest"]
    assert manifest["version"] == "0001"
    assert [f["path"] for f in manifest["files"]] == sorted(bundle_files())
    # stored as a content-addressed blob of the upload, and not activated
    assert (settings.blob_dir / hashlib.sha256(data).hexdigest()[:2]).is_dir()
    row = db_session.query(SynkronusBundleVersion).filter_by(tenant_id=admin.tenant_id).one()
    assert row.sha256 == hashlib.sha256(data).hexdigest() and row.active is False
    info = row.app_info
    assert info["version"] == "0001"
    survey = info["forms"]["survey"]
    assert survey["form_hash"] == hashlib.sha256(bundle_files()["forms/survey/schema.json"]).hexdigest()
    fields = {f["name"]: f for f in survey["fields"]}
    assert fields["core_id"]["core"] and fields["core_id"]["required"] and not fields["name"]["core"]
    assert fields["age"]["default"] == 0 and fields["photo"]["question_type"] == "photo"
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0001"]}
    assert client.get("/app-bundle/manifest", headers=h).get_json()["version"] == "current"
    assert pushed(client, h, zip_of(bundle_files(app__main_js=b"2"))) == "0002"


def test_push_needs_an_admin(app, client, db_session):
    writer = make_user(db_session, role="read-write")
    _problem(push(client, bearer(app, writer), zip_of(bundle_files())), 403)
    _problem(push(client, {}, zip_of(bundle_files())), 401)


def test_every_structural_problem_is_listed(app, client, admin):
    bad_schema = dict(SURVEY_SCHEMA, properties=dict(SURVEY_SCHEMA["properties"],
                                                     mood={"type": "string", "x-renderer": "emoji"},
                                                     deep={"rendererType": "nowhere"}))
    files = bundle_files(app__index_html=None, forms__survey__schema_json=bad_schema,
                         **{"README.md": b"hi", "extra__x.txt": b"x", "forms__lonely__schema.json": b"{}",
                            "forms__survey__notes.txt": b"n", "forms__broken__schema.json": b"{not json",
                            "forms__broken__ui.json": b"[]", "renderers__camera__helper.js": b"x"})
    r = push(client, bearer(app, admin), zip_of(files, dirs=["other/"]))
    body = _problem(r)
    problems = body["problems"]
    expected = ["'README.md'", "'extra'", "'other'", "app/index.html is required",
                "form 'lonely' has no forms/lonely/ui.json", "forms/survey/notes.txt",
                "'forms/broken/schema.json' is not valid JSON", "'forms/broken/ui.json' must be a JSON object",
                "renderers/camera/helper.js", "'emoji'", "'nowhere'"]
    for words in expected:
        assert any(words in p for p in problems), (words, problems)
    assert not any("'camera'" in p for p in problems)  # the bundle's own renderer is known
    assert body["error"] == "invalid_bundle" and problems[0] in body["detail"]
    assert client.get("/app-bundle/versions", headers=bearer(app, admin)).get_json() == {"versions": []}


def _symlink() -> bytes:
    info = zipfile.ZipInfo("app/link.html")
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return zip_with([(zipfile.ZipInfo("app/index.html"), b"x"), (info, "/etc/passwd")])


def _size_lie() -> bytes:
    """Header says 10 bytes; the member inflates to 4 MB."""
    data = bytearray(zip_with([(zipfile.ZipInfo("app/index.html"), b" " * (4 << 20))]))
    real, fake = struct.pack("<I", 4 << 20), struct.pack("<I", 10)
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    assert data[local + 22:local + 26] == real and data[central + 24:central + 28] == real
    data[local + 22:local + 26] = fake
    data[central + 24:central + 28] = fake
    return bytes(data)


def _encrypted() -> bytes:
    data = bytearray(zip_of({"app/index.html": b"x"}))
    for magic, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(magic)
        data[at + offset] |= 0x1
    return bytes(data)


def _unknown_method() -> bytes:
    data = bytearray(zip_of({"app/index.html": b"x"}))
    for magic, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(magic)
        data[at + offset:at + offset + 2] = struct.pack("<H", 99)
    return bytes(data)


def _fifo() -> bytes:
    info = zipfile.ZipInfo("app/pipe")
    info.create_system = 3
    info.external_attr = 0o010644 << 16
    return zip_with([(zipfile.ZipInfo("app/index.html"), b"x"), (info, b"")])


@pytest.mark.parametrize("build, words", [
    (_unknown_method, "cannot be read"),
    (_fifo, "not a regular file"),
    (lambda: zip_of({f"app/{i}.html": b"x" for i in range(10_001)}), "10001 entries"),
    (lambda: zip_of(bundle_files(**{"app/../../evil.html": b"x"})), "outside the archive"),
    (lambda: zip_of(bundle_files(**{"/etc/evil.html": b"x"})), "absolute"),
    (lambda: zip_of(bundle_files(**{"app\\evil.html": b"x"})), "absolute or non-portable"),
    (lambda: zip_of(bundle_files(app__aXb_html=b"x")).replace(b"aXb", b"a\x00b"), "NUL"),
    (_symlink, "symbolic link"),
    (lambda: zip_with([(zipfile.ZipInfo("app/index.html"), b"a"), (zipfile.ZipInfo("app/index.html"), b"b")]),
     "appears twice"),
    (lambda: zip_with([(zipfile.ZipInfo("app/index.html"), b"x"),
                       (zipfile.ZipInfo("app/zeros.bin"), b"\x00" * (50 << 20))]), "ZIP bomb"),
    (_size_lie, "corrupt"),
    (_encrypted, "encrypted"),
    (lambda: b"PK\x03\x04 but not really a zip", "not a readable ZIP"),
    (lambda: b"plain text", "not a readable ZIP"),
    (lambda: zip_of(bundle_files(**{"app/" + "x" * 2000: b"x"})), "longer than"),
])
def test_hostile_archives_are_400_and_store_nothing(app, client, admin, build, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it is asked to write
        data = build()
    body = _problem(push(client, bearer(app, admin), data))
    assert any(words in p for p in body["problems"]), body["problems"]
    assert "Traceback" not in json.dumps(body) and "psycopg" not in json.dumps(body)
    assert client.get("/app-bundle/versions", headers=bearer(app, admin)).get_json() == {"versions": []}


def test_many_hostile_entries_are_all_listed(app, client, admin):
    files = bundle_files(**{"../a.html": b"x", "/b.html": b"x", "app/../c.html": b"x"})
    problems = _problem(push(client, bearer(app, admin), zip_of(files)))["problems"]
    assert sum("outside the archive" in p for p in problems) == 2 and sum("absolute" in p for p in problems) == 1


def test_request_shape_problems(app, client, admin):
    h = bearer(app, admin)
    assert "'bundle'" in _problem(push(client, h, zip_of(bundle_files()), field="file"))["problems"][0]
    _problem(client.post("/app-bundle/push", headers=h, json={"bundle": "x"}))
    two = client.post("/app-bundle/push", headers=h, content_type="multipart/form-data",
                      data={"bundle": [(io.BytesIO(b"a"), "a.zip"), (io.BytesIO(b"b"), "b.zip")]})
    _problem(two)


def test_a_bundle_over_the_cap_is_413(settings, isolated_sessions, broker, redis_client, db_session):
    from web.app import create_app
    app = create_app(settings.replace(max_bundle_bytes=2000), session_factory=isolated_sessions,
                     celery_app=broker, redis_client=redis_client)
    admin = make_user(db_session, role="admin", tenant=f"t-{uuid.uuid4().hex[:8]}")
    big = zip_with([(zipfile.ZipInfo("app/index.html"), os.urandom(4000))])
    assert len(big) > 2000
    body = _problem(push(app.test_client(), bearer(app, admin), big), 413)
    assert body["error"] in ("bundle_too_large", "payload_too_large")
    framed = push(app.test_client(), bearer(app, admin), os.urandom(3 << 20))  # past the multipart cap too
    _problem(framed, 413)
    small = zip_of({"app/index.html": b"x"})
    assert push(app.test_client(), bearer(app, admin), small).status_code == 200


def test_core_fields_cannot_change_from_the_active_version(app, client, admin):
    h = bearer(app, admin)
    pushed(client, h, zip_of(bundle_files()))
    changed = dict(SURVEY_SCHEMA, properties=dict(SURVEY_SCHEMA["properties"], core_id={"type": "integer"}))
    # nothing is active yet: any core fields go
    assert pushed(client, h, zip_of(bundle_files(forms__survey__schema_json=changed))) == "0002"
    assert client.post("/app-bundle/switch/0001", headers=h).status_code == 200
    problems = _problem(push(client, h, zip_of(bundle_files(forms__survey__schema_json=changed))))["problems"]
    assert any("core fields" in p and "'survey'" in p for p in problems)
    marked = dict(SURVEY_SCHEMA, properties=dict(SURVEY_SCHEMA["properties"], name={"type": "string", "x-core": True}))
    _problem(push(client, h, zip_of(bundle_files(forms__survey__schema_json=marked))))
    other = dict(SURVEY_SCHEMA, properties=dict(SURVEY_SCHEMA["properties"], extra={"type": "string"}))
    assert pushed(client, h, zip_of(bundle_files(forms__survey__schema_json=other))) == "0003"


def test_unstorable_form_text_is_a_problem_not_a_crash(app, client, admin):
    schema = {"type": "object", "properties": {"a\u0000b": {"type": "string"}}}
    files = bundle_files(forms__survey__schema_json=json.dumps(schema).encode())
    assert "cannot be stored" in " ".join(_problem(push(client, bearer(app, admin), zip_of(files)))["problems"])
    deep = b'{"properties": {"x": ' + b"[" * 2000 + b"]" * 2000 + b"}}"
    r = push(client, bearer(app, admin), zip_of(bundle_files(forms__survey__schema_json=deep)))
    assert "not valid JSON" in " ".join(_problem(r)["problems"])


def _peak_while(fn) -> int:
    import tracemalloc
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_push_and_download_stream_without_holding_the_bundle(settings, db_session, tmp_path):
    from models.blobs import BlobStore
    from workers.synkronus.bundles import member_chunks, store_bundle
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app/index.html", b"<html/>")
        with zf.open("app/media.bin", "w") as out:
            for _ in range(24):
                out.write(os.urandom(1 << 20))
    blobs = BlobStore(settings.blob_dir)
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    stored = []
    with open(path, "rb") as upload:
        peak = _peak_while(lambda: stored.append(store_bundle(db_session, blobs, settings, tenant_id=tenant,
                                                              upload=upload, actor="test")))
    assert path.stat().st_size > 24 << 20 and peak < 4 << 20, peak
    row = stored[0].row
    media = next(f for f in stored[0].files if f["path"] == "app/media.bin")
    digest = hashlib.sha256()
    peak = _peak_while(lambda: [digest.update(c) for c in member_chunks(blobs, row.sha256, "app/media.bin",
                                                                          media["size"])])
    assert digest.hexdigest() == media["sha256"] and peak < 4 << 20, peak


# --- versions and switch --------------------------------------------------------------------------

def test_versions_newest_first_and_switch(app, client, admin, db_session):
    h = bearer(app, admin)
    pushed(client, h, zip_of(bundle_files()))
    pushed(client, h, zip_of(bundle_files(app__main_js=b"2")))
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0002", "0001"]}
    r = client.post("/app-bundle/switch/0001", headers=h)
    assert r.status_code == 200 and r.get_json() == {"message": "Switched to app bundle version 0001"}
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0002", "0001 *"]}
    assert client.post("/app-bundle/switch/0002", headers=h).status_code == 200
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0002 *", "0001"]}
    for unknown in ("0009", "abc", "..%2F0001", "0001/extra", "%00", "99999999999"):
        _problem(client.post(f"/app-bundle/switch/{unknown}", headers=h), 404)
    reader = make_user(db_session, role="read-only", tenant=admin.tenant_id)
    _problem(client.post("/app-bundle/switch/0001", headers=bearer(app, reader)), 403)
    listed = client.get("/app-bundle/versions", headers=bearer(app, reader)).get_json()
    assert listed == {"versions": ["0002 *", "0001"]}


def test_bundles_are_per_tenant(app, client, admin, db_session):
    h = bearer(app, admin)
    pushed(client, h, zip_of(bundle_files()))
    assert client.post("/app-bundle/switch/0001", headers=h).status_code == 200
    other = make_user(db_session, role="admin", tenant=f"t-{uuid.uuid4().hex[:8]}")
    ho = bearer(app, other)
    assert client.get("/app-bundle/versions", headers=ho).get_json() == {"versions": []}
    assert client.get("/app-bundle/manifest", headers=ho).get_json()["files"] == []
    _problem(client.get("/app-bundle/download/app%2Findex.html", headers=ho), 404)
    _problem(client.post("/app-bundle/switch/0001", headers=ho), 404)
    assert pushed(client, ho, zip_of(bundle_files())) == "0001"


def test_versions_kept_never_drop_the_active_one(settings, isolated_sessions, broker, redis_client, db_session):
    from web.app import create_app
    app = create_app(settings.replace(max_versions_kept=2), session_factory=isolated_sessions,
                     celery_app=broker, redis_client=redis_client)
    client = app.test_client()
    admin = make_user(db_session, role="admin", tenant=f"t-{uuid.uuid4().hex[:8]}")
    h = bearer(app, admin)
    pushed(client, h, zip_of(bundle_files()))
    assert client.post("/app-bundle/switch/0001", headers=h).status_code == 200
    for n in range(2, 5):
        pushed(client, h, zip_of(bundle_files(app__main_js=str(n).encode())))
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0004", "0003", "0001 *"]}
    assert client.get("/app-bundle/download/app%2Findex.html", headers=h).status_code == 200
    _problem(client.post("/app-bundle/switch/0002", headers=h), 404)
    assert pushed(client, h, zip_of(bundle_files(app__main_js=b"5"))) == "0005"
    assert client.get("/app-bundle/versions", headers=h).get_json() == {"versions": ["0005", "0004", "0001 *"]}


# --- manifest and download ------------------------------------------------------------------------

def test_manifest_hashes_etag_and_304(app, client, admin):
    h = bearer(app, admin)
    files = bundle_files()
    pushed(client, h, zip_of(files))
    empty = client.get("/app-bundle/manifest", headers=h)
    assert empty.status_code == 200 and empty.get_json()["files"] == [] and empty.headers["ETag"]
    client.post("/app-bundle/switch/0001", headers=h)
    r = client.get("/app-bundle/manifest", headers=h)
    assert r.status_code == 200
    m = r.get_json()
    assert m["version"] == "0001" and [f["path"] for f in m["files"]] == sorted(files)
    by_path = {f["path"]: f for f in m["files"]}
    for path, data in files.items():
        assert by_path[path]["hash"] == hashlib.sha256(data).hexdigest() and by_path[path]["size"] == len(data)
        assert by_path[path]["modTime"].endswith("Z")
    assert by_path["app/index.html"]["mimeType"] == "text/html"
    assert by_path["forms/survey/schema.json"]["mimeType"] == "application/json"
    expected = hashlib.sha256("".join(f"{f['path']}{f['hash']}{f['size']}" for f in m["files"]).encode()
                              + f"{m['version']}{m['generatedAt']}".encode()).hexdigest()
    assert m["hash"] == expected and r.headers["ETag"] == f'"{expected}"'
    again = client.get("/app-bundle/manifest", headers=h)
    assert again.get_json() == m  # stable until a switch
    nm = client.get("/app-bundle/manifest", headers={**h, "If-None-Match": r.headers["ETag"]})
    assert nm.status_code == 304 and nm.get_data() == b"" and nm.headers["ETag"] == r.headers["ETag"]
    assert client.get("/app-bundle/manifest", headers={**h, "If-None-Match": '"other"'}).status_code == 200
    pushed(client, h, zip_of(bundle_files(app__main_js=b"2")))
    client.post("/app-bundle/switch/0002", headers=h)
    changed = client.get("/app-bundle/manifest", headers={**h, "If-None-Match": r.headers["ETag"]})
    assert changed.status_code == 200 and changed.get_json()["version"] == "0002"


def test_download_with_encoded_slashes_etag_and_preview(app, client, admin, db_session):
    h = bearer(app, admin)
    files = bundle_files()
    _problem(client.get("/app-bundle/download/app%2Findex.html", headers=h), 404)  # nothing active
    pushed(client, h, zip_of(files))
    client.post("/app-bundle/switch/0001", headers=h)
    pushed(client, h, zip_of(bundle_files(forms__survey__ui_json={"type": "HorizontalLayout"})))
    reader = make_user(db_session, role="read-only", tenant=admin.tenant_id)
    hr = bearer(app, reader)
    r = client.get("/app-bundle/download/forms%2Fsurvey%2Fui.json", headers=hr)
    assert r.status_code == 200 and r.get_data() == files["forms/survey/ui.json"]
    assert r.headers["x-is-preview"] == "false" and r.mimetype == "application/json"
    assert r.headers["ETag"] == f'"{hashlib.sha256(files["forms/survey/ui.json"]).hexdigest()}"'
    assert client.get("/app-bundle/download/forms/survey/ui.json", headers=hr).get_data() == r.get_data()
    nm = client.get("/app-bundle/download/forms%2Fsurvey%2Fui.json", headers={**hr, "If-None-Match": r.headers["ETag"]})
    assert nm.status_code == 304 and nm.get_data() == b""
    p = client.get("/app-bundle/download/forms%2Fsurvey%2Fui.json?preview=true", headers=hr)
    assert p.status_code == 200 and json.loads(p.get_data()) == {"type": "HorizontalLayout"}
    assert p.headers["x-is-preview"] == "true" and p.headers["ETag"] != r.headers["ETag"]
    jsx = client.get("/app-bundle/download/renderers%2Fcamera%2Frenderer.jsx", headers=hr)
    assert jsx.get_data() == files["renderers/camera/renderer.jsx"]
    for missing in ("nope.html", "app%2F..%2F..%2Fetc%2Fpasswd", "app%2Findex.html%00", "%ff%fe", "x" * 3000):
        _problem(client.get(f"/app-bundle/download/{missing}", headers=hr), 404)
    _problem(client.get("/app-bundle/download/app%2Findex.html"), 401)


def test_a_lost_bundle_blob_is_answered_not_crashed(app, client, admin, settings):
    h = bearer(app, admin)
    data = zip_of(bundle_files(app__main_js=uuid.uuid4().hex.encode()))  # content no other test stores
    pushed(client, h, data)
    client.post("/app-bundle/switch/0001", headers=h)
    sha = hashlib.sha256(data).hexdigest()
    (settings.blob_dir / sha[:2] / sha[2:4] / sha).unlink()
    body = _problem(client.get("/app-bundle/download/app%2Fmain.js", headers=h), 503)
    assert body["error"] == "bundle_unreadable"


def test_other_paths_and_methods_answer_in_the_envelope(app, client, admin):
    h = bearer(app, admin)
    r = client.get("/app-bundle/push", headers=h)
    _problem(r, 405)
    assert r.headers["Allow"] == "POST"
    _problem(client.get("/app-bundle/nothing-here", headers=h), 404)
    _problem(client.delete("/app-bundle/download/app%2Findex.html", headers=h), 405)


# --- changes --------------------------------------------------------------------------------------

def test_changes_between_versions(app, client, admin):
    h = bearer(app, admin)
    assert client.get("/app-bundle/changes", headers=h).status_code == 404
    pushed(client, h, zip_of(bundle_files()))
    single = client.get("/app-bundle/changes", headers=h).get_json()
    assert single == {"compare_version_a": "0001", "compare_version_b": "0001", "form_changes": False,
                      "ui_changes": False}
    schema = dict(SURVEY_SCHEMA, properties={k: v for k, v in SURVEY_SCHEMA["properties"].items() if k != "photo"})
    schema["properties"]["age"] = {"type": "number"}
    schema["properties"]["notes"] = {"type": "string"}
    pushed(client, h, zip_of(bundle_files(forms__survey__schema_json=schema, forms__survey__ui_json={"x": 1},
                                          forms__visit__schema_json={"type": "object"}, forms__visit__ui_json={})))
    log = client.get("/app-bundle/changes", headers=h).get_json()  # nothing active: newest vs the one before
    assert log["compare_version_a"] == "0002" and log["compare_version_b"] == "0001"
    assert log["form_changes"] is True and log["ui_changes"] is True
    assert log["new_forms"] == [{"form": "visit"}] and "removed_forms" not in log
    (mod,) = log["modified_forms"]
    assert mod["form"] == "survey" and mod["schema_changed"] and mod["ui_changed"] and not mod["core_changed"]
    assert mod["added_fields"] == [{"field": "age", "type": "number"}, {"field": "notes", "type": "string"}]
    assert mod["removed_fields"] == [{"field": "age", "type": "integer"}, {"field": "photo", "type": "string"}]
    back = client.get("/app-bundle/changes?current=0001&target=0002", headers=h).get_json()
    assert back["removed_forms"] == [{"form": "visit"}] and "new_forms" not in back
    client.post("/app-bundle/switch/0001", headers=h)
    assert client.get("/app-bundle/changes", headers=h).get_json()["compare_version_b"] == "0001"  # no earlier one
    _problem(client.get("/app-bundle/changes?current=0042", headers=h), 404)
    _problem(client.get("/app-bundle/changes?target=0042", headers=h), 404)
    _problem(client.get("/app-bundle/changes?current=latest%00", headers=h), 400)


# --- command line ---------------------------------------------------------------------------------

def test_cli_bundle_push_list_switch(settings, engine, tmp_path):
    from web.cli import main
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "FIELDSYNC_DATA_DIR": str(settings.data_dir)}

    def run(*args):
        return CliRunner().invoke(main, ["synkronus", "bundle", *args], env=env, catch_exceptions=False)

    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(zip_of(bundle_files()))
    bad.write_bytes(zip_of({"README.md": b"x"}))
    r = run("push", str(good), "--tenant", tenant)
    assert r.exit_code == 0 and "stored version 0001" in r.output
    r = run("push", str(bad), "--tenant", tenant)
    assert r.exit_code == 1 and "README.md" in r.output and "app/index.html is required" in r.output
    assert run("push", str(good), "--tenant", tenant, "--activate").output.strip() == "stored version 0002 (active)"
    listed = run("list", "--tenant", tenant).output.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["0002 *", "0001"]
    assert run("switch", "0001", "--tenant", tenant).exit_code == 0
    assert [line.split("\t")[0] for line in run("list", "--tenant", tenant).output.splitlines()] == ["0002", "0001 *"]
    missing = run("switch", "0007", "--tenant", tenant)
    assert missing.exit_code == 1 and "does not exist" in missing.output
    assert CliRunner().invoke(main, ["synkronus", "clients", "--tenant", tenant], env=env).exit_code == 0
