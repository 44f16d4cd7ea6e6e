"""Resumable chunked upload into the DIGIT filestore (protocol in docs/digit.md).

    POST   /filestore/v1/uploads              {"tenantId", "filename"?, "size"?, "contentType"?} -> uploadId
    HEAD   /filestore/v1/uploads/<id>         Upload-Offset: the confirmed offset (also GET, as JSON)
    PATCH  /filestore/v1/uploads/<id>         bytes from Upload-Offset (or Content-Range: bytes a-b/total)
    POST   /filestore/v1/uploads/<id>/_finish {"sha256"?} -> {"files": [{"fileStoreId", "tenantId"}]}
    DELETE /filestore/v1/uploads/<id>         abandon

Bytes are appended to a part file under the data directory and fsynced before the offset is committed,
so the confirmed offset never claims bytes that a crash could lose. A link that drops in the middle of a
PATCH keeps what arrived; the client asks for the offset and carries on from there."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, request
from sqlalchemy import func

from models.blobs import BlobTooLarge
from models.digit import store as digit
from models.digit.tables import DigitUpload
from web import db, uploads
from web.auth import current_principal, require
from web.digit.auth import require_writer, tenant_in
from web.digit.envelope import digit_error, text_field
from web.digit.filestore import base_url, blobs, settings
from web.errors import TooLarge
from web.jsonbody import body_stream, read_json

bp = Blueprint("digit_uploads", __name__)

MAX_FILENAME = 255


def part_dir() -> Path:
    return Path(settings().data_dir) / "digit-uploads"


def part_path(upload: DigitUpload) -> Path:
    return part_dir() / f"{upload.id}.part"


def _view(upload: DigitUpload) -> dict:
    return {"uploadId": str(upload.id), "tenantId": upload.tenant_id, "offset": upload.received,
            "size": upload.declared_size, "status": upload.status, "filename": upload.filename,
            "fileStoreId": str(upload.file_id) if upload.file_id else None,
            "uploadUrl": f"{base_url()}/filestore/v1/uploads/{upload.id}"}


def _headers(upload: DigitUpload) -> dict:
    headers = {"Upload-Offset": str(upload.received), "Cache-Control": "no-store"}
    if upload.declared_size is not None:
        headers["Upload-Length"] = str(upload.declared_size)
    return headers


def _load(upload_id: str, *, lock: bool) -> DigitUpload:
    principal = current_principal()
    session = db.session()
    upload = digit.lock_upload(session, upload_id) if lock else digit.get_upload(session, upload_id)
    if upload is None or not principal.may_act_in(upload.tenant_id):
        raise digit_error("UPLOAD_NOT_FOUND", "no such upload")
    return upload


@bp.post("/filestore/v1/uploads")
@require()
def start():
    principal = current_principal()
    require_writer(principal)
    body = read_json(required=False) or {}
    if not isinstance(body, dict):
        raise digit_error("JsonMappingException", "the body must be a JSON object")
    tenant = tenant_in(principal, body.get("tenantId") or request.args.get("tenantId"))
    size = body.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise digit_error("JsonMappingException", "size must be a non-negative integer (bytes)")
    if size is not None and size > settings().max_upload_bytes:
        raise TooLarge(f"the file is larger than {settings().max_upload_bytes} bytes")
    filename = text_field(body.get("filename"), "filename", where="", max_length=MAX_FILENAME, required=False)
    content_type = text_field(body.get("contentType"), "contentType", where="", max_length=255, required=False)
    upload = DigitUpload(tenant_id=tenant, filename=filename, declared_size=size, content_type=content_type,
                         created_by=principal.user_id)
    session = db.session()
    session.add(upload)
    session.flush()
    part_dir().mkdir(parents=True, exist_ok=True)
    part_path(upload).touch()
    db.commit()
    headers = _headers(upload)
    headers["Location"] = f"/filestore/v1/uploads/{upload.id}"
    return _view(upload), 201, headers


@bp.route("/filestore/v1/uploads/<upload_id>", methods=["GET", "HEAD"])
@require()
def status(upload_id: str):
    upload = _load(upload_id, lock=False)
    return _view(upload), 200, _headers(upload)


_OFFSET_CODES = {"bad_offset": "INVALID_UPLOAD_OFFSET", "no_offset": "INVALID_UPLOAD_OFFSET",
                 "bad_range": "INVALID_CONTENT_RANGE", "total_mismatch": "INVALID_CONTENT_RANGE"}


def _client_offset(upload: DigitUpload) -> int:
    try:
        offset, total = uploads.client_offset(request.headers, max_bytes=settings().max_upload_bytes,
                                              declared_size=upload.declared_size)
    except uploads.OffsetError as exc:
        if exc.reason == "too_large":
            raise TooLarge(exc.message) from None
        raise digit_error(_OFFSET_CODES[exc.reason], exc.message) from None
    if total is not None and upload.declared_size is None:
        upload.declared_size = total
    return offset


@bp.route("/filestore/v1/uploads/<upload_id>", methods=["PATCH", "PUT"])
@require()
def append(upload_id: str):
    require_writer(current_principal())
    request.max_content_length = settings().max_upload_bytes
    upload = _load(upload_id, lock=True)
    if upload.status != "OPEN":
        raise digit_error("UPLOAD_FINISHED", "this upload is already finished", status=409)
    offset = _client_offset(upload)
    if offset != upload.received:
        raise digit_error("OFFSET_MISMATCH", f"the server has {upload.received} bytes of this upload; "
                          f"send from offset {upload.received}", status=409, params=[str(upload.received)],
                          headers=_headers(upload))
    limit = settings().max_upload_bytes
    if upload.declared_size is not None:
        limit = min(limit, upload.declared_size)
    stream = body_stream()  # a chunked body is capped at max_upload_bytes too (413 past it)
    try:
        written = uploads.append_part(part_path(upload), upload.received, stream, limit)
    except uploads.PartTooLarge as exc:
        raise TooLarge(str(exc)) from None
    upload.received += written
    upload.updated_at = func.now()
    db.commit()
    return _view(upload), 200, _headers(upload)


@bp.post("/filestore/v1/uploads/<upload_id>/_finish")
@require()
def finish(upload_id: str):
    principal = current_principal()
    require_writer(principal)
    body = read_json(required=False) or {}
    upload = _load(upload_id, lock=True)
    if upload.status == "DONE":
        row = digit.get_file(db.session(), upload.file_id)
        return {"files": [{"fileStoreId": str(row.id), "tenantId": row.tenant_id, "sha256": row.sha256,
                           "size": row.size}]}, 200
    if upload.declared_size is not None and upload.received != upload.declared_size:
        raise digit_error("UPLOAD_INCOMPLETE", f"only {upload.received} of {upload.declared_size} bytes have "
                          "arrived", params=[str(upload.received)], headers=_headers(upload))
    try:
        sha, size = blobs().put_chunks(uploads.part_chunks(part_path(upload), upload.received),
                                       max_bytes=settings().max_upload_bytes)
    except BlobTooLarge as exc:
        raise TooLarge(f"the upload is larger than {exc.limit} bytes") from None
    if size != upload.received:
        raise digit_error("UPLOAD_INCOMPLETE", "the stored part is shorter than the confirmed offset; "
                          "abandon this upload and start again")
    expected = body.get("sha256") if isinstance(body, dict) else None
    expected = text_field(expected, "sha256", where="", max_length=128, required=False)
    if expected and expected.lower() != sha:
        raise digit_error("CHECKSUM_MISMATCH", f"the uploaded bytes hash to {sha}, not {expected}")
    session = db.session()
    row = digit.add_file(session, tenant_id=upload.tenant_id, sha256=sha, size=size, filename=upload.filename,
                         content_type=upload.content_type, created_by=principal.user_id)
    upload.status = "DONE"
    upload.file_id = row.id
    upload.updated_at = func.now()
    db.commit()
    part_path(upload).unlink(missing_ok=True)
    return {"files": [{"fileStoreId": str(row.id), "tenantId": row.tenant_id, "sha256": sha, "size": size}]}, 201


@bp.delete("/filestore/v1/uploads/<upload_id>")
@require()
def abandon(upload_id: str):
    require_writer(current_principal())
    upload = _load(upload_id, lock=True)
    if upload.status == "OPEN":
        upload.status = "ABANDONED"
        upload.updated_at = func.now()
        db.commit()
        part_path(upload).unlink(missing_ok=True)
    return "", 204
