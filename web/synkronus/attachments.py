"""Synkronus attachments: immutable files a client names by id.

    PUT    /attachments/<id>        multipart field `file` (read-write or admin) -> {"status": "success"}
    GET    /attachments/<id>        the bytes (HTTP Range, If-None-Match; ETag is the sha256); HEAD too
    DELETE /attachments/<id>        admin: removes it and records a `delete` operation
    POST   /attachments/manifest    {client_id, since_version, have_hashes?} -> the operations to replay

Resumable uploads (for files over a few MB on a bad link; the machinery is web/uploads.py):

    POST   /attachments/uploads                 {"attachment_id", "size"?, "content_type"?} -> upload_id
    HEAD   /attachments/uploads/<upload_id>     Upload-Offset: the confirmed offset (GET: as JSON)
    PATCH  /attachments/uploads/<upload_id>     bytes from Upload-Offset (or Content-Range: bytes a-b/total)
    POST   /attachments/uploads/<upload_id>/finish  {"sha256"?} -> as PUT: the attachment and its `create`
    DELETE /attachments/uploads/<upload_id>     abandon

The id is one path segment of at most 255 characters. Files stream into the content-addressed blob store
(parsed as they arrive, with no spool to a temporary file, hashed and size-capped; a killed upload
leaves no blob); the same bytes under two ids are
stored once. Everything is scoped to the caller's tenant: another tenant's id answers exactly like an
unknown one."""
from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from urllib.parse import quote

from flask import Blueprint, current_app, request, send_file
from sqlalchemy import func

from models.blobs import BlobTooLarge
from models.synkronus import attachments as store
from web import context, db, uploads
from web.auth import current_principal, require
from web.errors import ApiError, BadRequest, Conflict, NotFound, TooLarge
from web.inputs import bounded_int, clean_text
from web.jsonbody import body_stream, read_json, read_json_object

bp = Blueprint("synkronus_attachments", __name__)

ID_MAX = 255
CLIENT_ID_MAX = 250
CONTENT_TYPE_MAX = 255
MAX_HAVE_HASHES = 100_000
_SHA256 = re.compile(r"[0-9a-f]{64}")
GENERIC_TYPE = "application/octet-stream"


def max_attachment_bytes() -> int:
    """The size cap of one attachment: SYNKRONUS_MAX_ATTACHMENT_BYTES, else MAX_UPLOAD_BYTES."""
    settings = context.settings()
    value = settings.option("synkronus", "max_attachment_bytes")
    try:
        return int(value) if value else settings.max_upload_bytes
    except ValueError:
        return settings.max_upload_bytes


def attachment_id_of(raw) -> str:
    """The id as one safe path segment: text without `/`, `\\`, control characters, and not `.` or `..`."""
    value = clean_text(raw, "attachment_id", ID_MAX, code="invalid_request")
    if ("/" in value or "\\" in value or value in (".", "..")
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
        raise BadRequest("attachment_id must be a single path segment (no '/', '\\' or control characters, "
                         "not '.' or '..')", code="invalid_attachment_id")
    return value


def _not_found() -> NotFound:
    return NotFound("Attachment not found", code="not_found")


def _content_type(mimetype: str | None, attachment_id: str) -> str:
    given = clean_text(mimetype, "file content type", CONTENT_TYPE_MAX, required=False,
                       code="invalid_request")
    if given and given != GENERIC_TYPE:
        return given
    guessed, _ = mimetypes.guess_type(attachment_id, strict=False)
    return guessed or GENERIC_TYPE


@bp.put("/attachments/<path:attachment_id>")
@require("read-write", "admin")
def upload(attachment_id: str):
    attachment_id = attachment_id_of(attachment_id)
    principal = current_principal()
    session = db.session()
    if store.get(session, principal.tenant_id, attachment_id) is not None:
        raise Conflict("Attachment already exists", code="attachment_exists")
    session.commit()  # hold no snapshot while the body streams in
    cap = max_attachment_bytes()
    # The per-route cap: the multipart envelope adds a little to the file itself.
    request.max_content_length = cap + 64 * 1024
    try:
        part = uploads.FilePart(body_stream(), request.headers.get("Content-Type"), "file")
        if not part.find():
            raise BadRequest("file is required", code="invalid_request")
        content_type = _content_type(part.mimetype, attachment_id)
        sha, size = context.blobs().put_chunks(part.chunks(), max_bytes=cap)
    except uploads.MultipartError as exc:
        raise BadRequest("file is required", code="invalid_request", reason=str(exc)) from None
    except BlobTooLarge as exc:
        raise TooLarge(f"the attachment is larger than {exc.limit} bytes", code="payload_too_large") from None
    return _created(session, principal, attachment_id, sha, size, content_type)


def _created(session, principal, attachment_id: str, sha: str, size: int, content_type: str, upload=None):
    """Add the stored blob as the attachment (and its `create` operation), commit, and answer."""
    try:
        created = store.create(session, principal.tenant_id, attachment_id, sha256=sha, size=size,
                               content_type=content_type, actor=principal.username)
    except store.AttachmentExists:
        session.rollback()
        raise Conflict("Attachment already exists", code="attachment_exists") from None
    if upload is not None:
        upload.status = "DONE"
        upload.updated_at = func.now()
    db.commit()
    body = {"status": "success", "attachment_id": attachment_id, "sha256": sha, "size": size,
            "version": created.version}
    if created.deduplicated:
        body["deduplicated"] = True
        body["message"] = "the same content is already stored; this id shares it"
    return body


@bp.get("/attachments/<path:attachment_id>")  # HEAD too: the same answer without the body
@require()
def download(attachment_id: str):
    attachment_id = attachment_id_of(attachment_id)
    principal = current_principal()
    row = store.get(db.session(), principal.tenant_id, attachment_id)
    if row is None or not context.blobs().exists(row.sha256):
        raise _not_found()
    response = send_file(context.blobs().path(row.sha256), mimetype=GENERIC_TYPE, as_attachment=True,
                         download_name=attachment_id, conditional=True, etag=row.sha256, max_age=0)
    response.headers["Accept-Ranges"] = "bytes"
    return response


@bp.delete("/attachments/<path:attachment_id>")
@require("admin")
def remove(attachment_id: str):
    attachment_id = attachment_id_of(attachment_id)
    principal = current_principal()
    session = db.session()
    version = store.delete(session, principal.tenant_id, attachment_id, actor=principal.username)
    if version is None:
        raise _not_found()
    db.commit()
    return {"message": "Attachment deleted successfully", "attachment_id": attachment_id, "version": version}


def base_url() -> str:
    configured = context.settings().public_base_url
    return (configured or request.host_url).rstrip("/")


def _have_hashes(value) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_HAVE_HASHES:
        raise BadRequest(f"have_hashes must be an array of at most {MAX_HAVE_HASHES} sha256 hex digests",
                         code="invalid_request")
    hashes = []
    for item in value:
        if not isinstance(item, str) or not _SHA256.fullmatch(item.lower()):
            raise BadRequest("have_hashes must hold sha256 hex digests (64 hex characters)", code="invalid_request")
        hashes.append(item.lower())
    return hashes


@bp.post("/attachments/manifest")
@require()
def manifest():
    body = read_json_object(code="invalid_request")
    client_id = clean_text(body.get("client_id"), "client_id", CLIENT_ID_MAX, code="invalid_request")
    since = body.get("since_version", 0)
    since = bounded_int(0 if since is None else since, "since_version", code="invalid_request")
    have = _have_hashes(body.get("have_hashes"))
    principal = current_principal()
    session = db.session()
    current, rows = store.manifest(session, principal.tenant_id, client_id=client_id, since=since,
                                   have_hashes=have)
    db.commit()
    base = base_url()
    operations, total, counts = [], 0, {"download": 0, "delete": 0}
    for row in rows:
        if row.operation == "delete":
            operations.append({"operation": "delete", "attachment_id": row.attachment_id, "version": row.version})
            counts["delete"] += 1
            continue
        operations.append({"operation": "download", "attachment_id": row.attachment_id,
                           "download_url": f"{base}/attachments/{quote(row.attachment_id, safe='')}",
                           "size": row.size, "content_type": row.content_type, "version": row.version,
                           "sha256": row.sha256})
        total += row.size
        counts["download"] += 1
    return current_app.json.response({"current_version": current, "operations": operations,
                                      "total_download_size": total, "operation_count": counts})


# --- resumable uploads ------------------------------------------------------------------------------

def part_path(upload) -> Path:
    return Path(context.settings().data_dir) / "synkronus-uploads" / f"{upload.id}.part"


def _upload_view(upload) -> dict:
    return {"upload_id": str(upload.id), "attachment_id": upload.attachment_id, "offset": upload.received,
            "size": upload.declared_size, "status": upload.status,
            "upload_url": f"{base_url()}/attachments/uploads/{upload.id}"}


def _upload_headers(upload) -> dict:
    headers = {"Upload-Offset": str(upload.received), "Cache-Control": "no-store"}
    if upload.declared_size is not None:
        headers["Upload-Length"] = str(upload.declared_size)
    return headers


def _load_upload(upload_id: str, *, lock: bool):
    principal = current_principal()
    upload = store.find_upload(db.session(), principal.tenant_id, upload_id, lock=lock)
    if upload is None:
        raise NotFound("Upload not found", code="upload_not_found")
    return upload


def _open(upload):
    if upload.status != "OPEN":
        raise Conflict(f"this upload is {upload.status.lower()}", code="upload_closed")


@bp.post("/attachments/uploads")
@require("read-write", "admin")
def start_upload():
    body = read_json_object(code="invalid_request")
    attachment_id = attachment_id_of(body.get("attachment_id"))
    size = body.get("size")
    cap = max_attachment_bytes()
    if size is not None:
        size = bounded_int(size, "size", code="invalid_request")
        if size > cap:
            raise TooLarge(f"the attachment is larger than {cap} bytes", code="payload_too_large")
    content_type = clean_text(body.get("content_type"), "content_type", CONTENT_TYPE_MAX, required=False,
                              code="invalid_request")
    principal = current_principal()
    session = db.session()
    if store.get(session, principal.tenant_id, attachment_id) is not None:
        raise Conflict("Attachment already exists", code="attachment_exists")
    upload = store.start_upload(session, principal.tenant_id, attachment_id, declared_size=size,
                                content_type=content_type, actor=principal.username)
    path = part_path(upload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    db.commit()
    headers = _upload_headers(upload)
    headers["Location"] = f"/attachments/uploads/{upload.id}"
    return _upload_view(upload), 201, headers


@bp.route("/attachments/uploads/<upload_id>", methods=["GET", "HEAD"])
@require()
def upload_status(upload_id: str):
    upload = _load_upload(upload_id, lock=False)
    return _upload_view(upload), 200, _upload_headers(upload)


@bp.patch("/attachments/uploads/<upload_id>")
@require("read-write", "admin")
def upload_chunk(upload_id: str):
    cap = max_attachment_bytes()
    request.max_content_length = cap
    upload = _load_upload(upload_id, lock=True)
    _open(upload)
    try:
        offset, total = uploads.client_offset(request.headers, max_bytes=cap, declared_size=upload.declared_size)
    except uploads.OffsetError as exc:
        if exc.reason == "too_large":
            raise TooLarge(exc.message, code="payload_too_large") from None
        raise BadRequest(exc.message, code="invalid_upload_offset") from None
    if total is not None and upload.declared_size is None:
        upload.declared_size = total
    if offset != upload.received:
        raise Conflict(f"the server has {upload.received} bytes of this upload; send from offset {upload.received}",
                       code="offset_mismatch", headers=_upload_headers(upload), offset=upload.received)
    limit = cap if upload.declared_size is None else min(cap, upload.declared_size)
    try:
        written = uploads.append_part(part_path(upload), upload.received, body_stream(), limit)
    except uploads.PartTooLarge as exc:
        raise TooLarge(str(exc), code="payload_too_large") from None
    upload.received += written
    upload.updated_at = func.now()
    db.commit()
    return _upload_view(upload), 200, _upload_headers(upload)


@bp.post("/attachments/uploads/<upload_id>/finish")
@require("read-write", "admin")
def finish_upload(upload_id: str):
    body = read_json(required=False) or {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_request")
    expected = clean_text(body.get("sha256"), "sha256", 64, required=False, code="invalid_request")
    principal = current_principal()
    session = db.session()
    upload = _load_upload(upload_id, lock=True)
    _open(upload)
    if upload.declared_size is not None and upload.received != upload.declared_size:
        raise ApiError(f"only {upload.received} of {upload.declared_size} bytes have arrived",
                       code="upload_incomplete", status=409, headers=_upload_headers(upload),
                       offset=upload.received)
    try:
        sha, size = context.blobs().put_chunks(uploads.part_chunks(part_path(upload), upload.received),
                                               max_bytes=max_attachment_bytes())
    except BlobTooLarge as exc:
        raise TooLarge(f"the attachment is larger than {exc.limit} bytes", code="payload_too_large") from None
    except FileNotFoundError:
        raise Conflict("the uploaded part is gone; start the upload again", code="upload_lost") from None
    if size != upload.received:
        raise Conflict("the stored part is shorter than the confirmed offset; start the upload again",
                       code="upload_incomplete")
    if expected and expected.lower() != sha:
        raise BadRequest(f"the uploaded bytes hash to {sha}, not {expected}", code="checksum_mismatch")
    content_type = upload.content_type or mimetypes.guess_type(upload.attachment_id, strict=False)[0] or GENERIC_TYPE
    answer = _created(session, principal, upload.attachment_id, sha, size, content_type, upload=upload)
    part_path(upload).unlink(missing_ok=True)
    return answer


@bp.delete("/attachments/uploads/<upload_id>")
@require("read-write", "admin")
def abandon_upload(upload_id: str):
    upload = _load_upload(upload_id, lock=True)
    if upload.status == "OPEN":
        upload.status = "ABANDONED"
        upload.updated_at = func.now()
        db.commit()
        part_path(upload).unlink(missing_ok=True)
    return "", 204
