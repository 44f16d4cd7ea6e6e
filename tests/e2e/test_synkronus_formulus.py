"""What a formulus client does, in its order, against committed data and a real worker process: an admin
pushes and activates an app bundle; a field user logs in, reads the manifest, downloads every file with
an encodeURIComponent path and checks it against the manifest's sha256, revalidates with ETags, then pushes
an observation of one of the bundle's forms with its photo attachment, and pulls both back."""
import hashlib
import io
import json
import uuid
import zipfile
from urllib.parse import quote

from models.db import session_scope
from tests.factories import bearer, make_user


def _bundle(title: str) -> bytes:
    schema = {"type": "object", "title": title, "properties": {
        "core_id": {"type": "string"}, "name": {"type": "string", "x-renderer": "text"}}}
    files = {"app/index.html": f"<html>{title}</html>".encode(),
             "forms/household/schema.json": json.dumps(schema).encode(),
             "forms/household/ui.json": b'{"type": "VerticalLayout", "elements": []}'}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_formulus_order_bundle_then_sync(live_worker, live_app, real_sessions):
    tenant = f"fm-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        admin = make_user(s, role="admin", tenant=tenant)
        field = make_user(s, role="read-write", tenant=tenant)
    client = live_app.test_client()
    ha = bearer(live_app, admin)

    r = client.post("/app-bundle/push", headers=ha, content_type="multipart/form-data",
                    data={"bundle": (io.BytesIO(_bundle("v1")), "bundle.zip")})
    assert r.status_code == 200, r.get_json()
    assert client.post("/app-bundle/switch/0001", headers=ha).status_code == 200

    login = client.post("/auth/login", json={"username": field.username, "password": "pw-secret"})
    assert login.status_code == 200
    h = {"Authorization": f"Bearer {login.get_json()['token']}"}

    m = client.get("/app-bundle/manifest", headers=h)
    assert m.status_code == 200
    manifest = m.get_json()
    assert manifest["version"] == "0001" and len(manifest["files"]) == 3
    etags = {}
    for f in manifest["files"]:
        d = client.get(f"/app-bundle/download/{quote(f['path'], safe='')}", headers=h)
        assert d.status_code == 200 and hashlib.sha256(d.get_data()).hexdigest() == f["hash"]
        assert len(d.get_data()) == f["size"] and d.headers["x-is-preview"] == "false"
        etags[f["path"]] = d.headers["ETag"]
    # the next start: nothing changed
    assert client.get("/app-bundle/manifest", headers={**h, "If-None-Match": m.headers["ETag"]}).status_code == 304
    for path, etag in etags.items():
        again = client.get(f"/app-bundle/download/{quote(path, safe='')}", headers={**h, "If-None-Match": etag})
        assert again.status_code == 304

    # a new bundle is pushed but not yet active: clients still see 0001, a preview shows 0002
    r = client.post("/app-bundle/push", headers=ha, content_type="multipart/form-data",
                    data={"bundle": (io.BytesIO(_bundle("v2")), "bundle.zip")})
    assert r.status_code == 200
    assert client.get("/app-bundle/manifest", headers={**h, "If-None-Match": m.headers["ETag"]}).status_code == 304
    p = client.get("/app-bundle/download/app%2Findex.html?preview=true", headers=h)
    assert p.get_data() == b"<html>v2</html>" and p.headers["x-is-preview"] == "true"
    assert client.get("/app-bundle/changes", headers=h).get_json()["compare_version_a"] == "0001"

    record = {"observation_id": "hh-1", "form_type": "household", "form_version": "1",
              "data": {"core_id": "A1", "name": "Amina"}, "created_at": "2024-01-15T10:30:00Z",
              "updated_at": "2024-01-15T10:30:00Z", "deleted": False}
    pushed = client.post("/sync/push", headers=h, json={"transmission_id": str(uuid.uuid4()), "client_id": "phone-1",
                                                        "records": [record]})
    assert pushed.status_code == 200 and pushed.get_json()["success_count"] == 1, pushed.get_json()
    pulled = client.post("/sync/pull", headers=h, json={"client_id": "phone-1", "since": {"version": 0}})
    assert [o["observation_id"] for o in pulled.get_json()["records"]] == ["hh-1"]

    # the observation's photo: uploaded, then listed by the attachment manifest and downloaded
    photo = uuid.uuid4().bytes * 100
    up = client.put("/attachments/hh-1-photo.jpg", headers=h, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(photo), "photo.jpg", "image/jpeg")})
    assert up.status_code == 200, up.get_json()
    listed = client.post("/attachments/manifest", headers=h, json={"client_id": "phone-2", "since_version": 0})
    assert listed.status_code == 200
    ops = [o for o in listed.get_json()["operations"] if o["attachment_id"] == "hh-1-photo.jpg"]
    assert len(ops) == 1 and ops[0]["sha256"] == hashlib.sha256(photo).hexdigest()
    assert client.get("/attachments/hh-1-photo.jpg", headers=h).get_data() == photo
