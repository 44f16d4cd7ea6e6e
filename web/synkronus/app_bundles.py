"""Synkronus app bundles, per tenant: POST /app-bundle/push (admin; multipart `bundle`, a ZIP, stored as
the next version `NNNN`, not active), GET /app-bundle/versions, POST /app-bundle/switch/{version} (admin),
GET /app-bundle/manifest (ETag, 304), GET /app-bundle/download/{path} (`%2F` in the path, `preview=true`
for the newest version, ETag, 304, `x-is-preview`) and GET /app-bundle/changes (the ChangeLog)."""
from __future__ import annotations

import datetime as dt
import hashlib
import zipfile

from flask import Blueprint, current_app, request

from models.synkronus import bundles as store
from web import context, db
from web.auth import current_principal, require
from web.errors import BadRequest, NotFound, TooLarge, Unavailable, catch_all
from workers.archive import ArchiveRejected
from workers.jsonsafe import find_bad_text
from workers.synkronus.bundles import BlobTooLarge, BundleRejected, changes as change_log, member_chunks, store_bundle

bp = Blueprint("synkronus_app_bundles", __name__)
# Any other path or method under /app-bundle answers 404 / 405 in Synkronus's shape.
unmatched_bp = catch_all("synkronus_app_bundles_unmatched", ("/app-bundle", "/app-bundle/<path:rest>"))

MULTIPART_SLACK = 1 << 20   # the multipart framing around the ZIP
MAX_PATH = 1024
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_of(row, files) -> dict:
    """The AppBundleManifest of a version (or of none: version "current", no files)."""
    version = store.version_name(row.number) if row is not None else "current"
    generated = _rfc3339((row.activated_at or row.created_at) if row is not None else EPOCH)
    mod_time = _rfc3339(row.created_at) if row is not None else generated
    listed = [{"path": f.path, "size": f.size, "hash": f.sha256, "mimeType": f.mime_type, "modTime": mod_time}
              for f in files]
    digest = hashlib.sha256()
    for f in listed:
        digest.update(f"{f['path']}{f['hash']}{f['size']}".encode())
    digest.update(f"{version}{generated}".encode())
    return {"files": listed, "version": version, "generatedAt": generated, "hash": digest.hexdigest()}


def _matches(etag: str) -> bool:
    """Whether If-None-Match names this entity tag (strong or weak, in a list, or *)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate in ("*", etag, etag.strip('"')):
            return True
    return False


def _not_modified(etag: str, **headers):
    response = current_app.response_class(status=304)
    response.headers["ETag"] = etag
    for name, value in headers.items():
        response.headers[name] = value
    return response


@bp.post("/app-bundle/push")
@require("admin")
def push():
    settings = context.settings()
    request.max_content_length = settings.max_bundle_bytes + MULTIPART_SLACK
    uploads = request.files.getlist("bundle")
    if len(uploads) != 1:
        problem = "the multipart field 'bundle' (the ZIP) is required" if not uploads else \
            "send exactly one multipart field 'bundle'"
        raise BadRequest(problem, code="invalid_bundle", problems=[problem])
    principal = current_principal()
    session = db.session()
    try:
        stored = store_bundle(session, context.blobs(), settings, tenant_id=principal.tenant_id,
                              upload=uploads[0].stream, actor=principal.username)
    except BundleRejected as exc:
        raise BadRequest(f"the app bundle is invalid: {exc.problems[0]}", code="invalid_bundle",
                         problems=exc.problems) from None
    except BlobTooLarge as exc:
        raise TooLarge(f"an app bundle may be at most {exc.limit} bytes", code="bundle_too_large") from None
    manifest = manifest_of(stored.row, store.files_of(session, stored.row.id))
    name = store.version_name(stored.row.number)
    db.commit()
    return {"message": f"App bundle pushed successfully as version {name} (not active; "
                       f"POST /app-bundle/switch/{name} activates it)", "manifest": manifest}


@bp.get("/app-bundle/versions")
@require()
def versions():
    rows = store.list_versions(db.session(), current_principal().tenant_id)
    return {"versions": [store.version_name(r.number) + (" *" if r.active else "") for r in rows]}


@bp.post("/app-bundle/switch/<path:version>")
@require("admin")
def switch(version: str):
    number = store.parse_version(version)
    tenant = current_principal().tenant_id
    session = db.session()
    row = None
    if number is not None:
        store.lock_tenant(session, tenant)
        row = store.activate(session, tenant, number)
    if row is None:
        raise NotFound(f"app bundle version {version!r} does not exist", code="version_not_found")
    db.commit()
    return {"message": f"Switched to app bundle version {store.version_name(row.number)}"}


@bp.get("/app-bundle/manifest")
@require()
def manifest():
    session = db.session()
    row = store.active_version(session, current_principal().tenant_id)
    body = manifest_of(row, store.files_of(session, row.id) if row is not None else [])
    etag = f'"{body["hash"]}"'
    if _matches(etag):
        return _not_modified(etag)
    response = current_app.json.response(body)
    response.headers["ETag"] = etag
    return response


def _flag(name: str) -> bool:
    return (request.args.get(name) or "").strip().lower() in ("true", "1", "t", "yes")


@bp.get("/app-bundle/download/<path:path>")
@require()
def download(path: str):
    # Werkzeug decodes %2F before routing, so `forms%2Fx%2Fschema.json` arrives here as forms/x/schema.json.
    preview = _flag("preview")
    tenant = current_principal().tenant_id
    session = db.session()
    row = store.newest_version(session, tenant) if preview else store.active_version(session, tenant)
    found = None
    if row is not None and len(path) <= MAX_PATH and find_bad_text(path, max_bytes=4 * MAX_PATH) is None:
        found = store.file_of(session, row.id, path)
    if found is None:
        raise NotFound(f"no file {path!r} in the {'newest' if preview else 'active'} app bundle",
                       code="file_not_found")
    etag = f'"{found.sha256}"'
    shown = "true" if preview else "false"
    if _matches(etag):
        return _not_modified(etag, **{"x-is-preview": shown})
    try:
        body = member_chunks(context.blobs(), row.sha256, found.path, found.size)
    except (OSError, zipfile.BadZipFile, ArchiveRejected):
        raise Unavailable("the stored app bundle cannot be read; push it again", code="bundle_unreadable") from None
    response = current_app.response_class(body, mimetype=found.mime_type, direct_passthrough=True)
    response.headers["Content-Length"] = str(found.size)
    response.headers["ETag"] = etag
    response.headers["x-is-preview"] = shown
    return response


def _named(session, tenant: str, value: str, what: str):
    number = store.parse_version(value)
    if number is None:
        raise BadRequest(f"{what} must be a version name such as 0001", code="invalid_version")
    row = store.get_version(session, tenant, number)
    if row is None:
        raise NotFound(f"app bundle version {value!r} does not exist", code="version_not_found")
    return row


@bp.get("/app-bundle/changes")
@require()
def changes():
    tenant = current_principal().tenant_id
    session = db.session()
    current_arg, target_arg = request.args.get("current"), request.args.get("target")
    if current_arg:
        current = _named(session, tenant, current_arg, "current")
    else:
        current = store.active_version(session, tenant) or store.newest_version(session, tenant)
        if current is None:
            raise NotFound("there is no app bundle version yet", code="version_not_found")
    if target_arg:
        target = _named(session, tenant, target_arg, "target")
    else:
        target = store.previous_version(session, tenant, current.number)
    a = store.version_name(current.number)
    if target is None:
        return change_log(a, current.app_info, a, None)
    return change_log(a, current.app_info, store.version_name(target.number), target.app_info)
