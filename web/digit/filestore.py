"""DIGIT filestore served by fieldsync: multipart upload, download URLs, and the download itself.

Files stream into the content-addressed blob store (hashed and size-capped as they arrive); a filestore
id names a blob in one tenant. Download URLs are signed (HMAC over id, tenant and expiry) so a client can
fetch without a header, like the pre-signed URLs DIGIT hands out; a Bearer token works too."""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import Blueprint, request, send_file

from models.blobs import BlobTooLarge
from models.digit import store as digit
from models.ids import parse_uuid
from web import context, db
from web.auth import current_principal, require
from web.digit.auth import require_writer, tenant_in, tenant_param
from web.digit.envelope import digit_error, text_field
from web.errors import TooLarge, Unauthorized

bp = Blueprint("digit_filestore", __name__)

URL_LIFETIME_SECONDS = 3600
MAX_FILENAME = 255
_FILE_PATH = re.compile(r"(?:/[^?#]*)?/filestore/v1/files/([0-9a-fA-F-]{36})(?:/content)?/?")
_QUERY_PATH = re.compile(r"(?:/[^?#]*)?/filestore/v1/files/(?:id|url)/?")


settings = context.settings
blobs = context.blobs


def base_url() -> str:
    return (settings().public_base_url or request.host_url).rstrip("/")


def _signature(file_id: str, tenant_id: str, expires: int) -> str:
    key = ("digit-filestore:" + settings().jwt_secret).encode()
    return hmac.new(key, f"{file_id}\n{tenant_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(row: digit.DigitFile) -> str:
    expires = int(time.time()) + URL_LIFETIME_SECONDS
    query = urlencode({"tenantId": row.tenant_id, "expires": expires,
                       "signature": _signature(str(row.id), row.tenant_id, expires)})
    return f"{base_url()}/filestore/v1/files/{row.id}/content?{query}"


def own_hosts() -> set[str]:
    hosts = {request.host.lower()}
    if settings().public_base_url:
        hosts.add(urlsplit(settings().public_base_url).netloc.lower())
    return hosts


def file_id_from_reference(reference: str) -> str:
    """A filestore id from `sync.file`: the id itself, or a URL of this server's own filestore. Any
    other URL is refused: fieldsync never fetches from elsewhere."""
    reference = reference.strip()
    direct = parse_uuid(reference)
    if direct is not None:
        return str(direct)
    refused = digit_error(
        "INVALID_FILE_URL", "sync.file must be a fileStoreId or a URL of this server's filestore "
        "(/filestore/v1/files/...); other URLs are not fetched",
        description="upload the file with POST /filestore/v1/files first")
    try:
        parts = urlsplit(reference)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise refused from None
    if parts.scheme not in ("", "http", "https"):
        raise refused
    if parts.scheme and parts.netloc.lower() not in own_hosts():
        raise refused
    match = _FILE_PATH.fullmatch(parts.path)
    if match:
        return match.group(1).lower()
    if _QUERY_PATH.fullmatch(parts.path):
        query = parse_qs(parts.query)
        ids = [i for v in query.get("fileStoreId", []) + query.get("fileStoreIds", []) for i in v.split(",") if i]
        if len(ids) == 1 and parse_uuid(ids[0]) is not None:
            return str(parse_uuid(ids[0]))
    raise refused


@bp.post("/filestore/v1/files")
@require()
def upload():
    principal = current_principal()
    require_writer(principal)
    # The per-route cap: uploads may be larger than ordinary JSON bodies.
    request.max_content_length = settings().max_upload_bytes
    tenant = tenant_in(principal, request.form.get("tenantId") or request.args.get("tenantId"))
    uploads = [f for name in request.files for f in request.files.getlist(name)]
    if not uploads:
        raise digit_error("EG_FILESTORE_INVALID_INPUT", "at least one file is required (multipart field 'file')")
    module = text_field(request.form.get("module"), "module", where="", max_length=128, required=False)
    for storage in uploads:
        text_field(storage.filename, "filename", where="file", max_length=MAX_FILENAME, required=False)
        text_field(storage.mimetype, "contentType", where="file", max_length=255, required=False)
    session = db.session()
    answered = []
    for storage in uploads:
        try:
            sha, size = blobs().put_stream(storage.stream, max_bytes=settings().max_upload_bytes)
        except BlobTooLarge as exc:
            raise TooLarge(f"a file is larger than {exc.limit} bytes") from None
        row = digit.add_file(session, tenant_id=tenant, sha256=sha, size=size, filename=storage.filename,
                             content_type=storage.mimetype or None, created_by=principal.user_id, module=module)
        answered.append({"fileStoreId": str(row.id), "tenantId": tenant, "sha256": sha, "size": size})
    db.commit()
    return {"files": answered}, 201


@bp.get("/filestore/v1/files/url")
@require()
def urls():
    principal = current_principal()
    tenant = tenant_param(request.args.get("tenantId"))
    ids = [i.strip() for v in request.args.getlist("fileStoreIds") for i in v.split(",") if i.strip()]
    if not ids:
        raise digit_error("NotNull.fileStoreIds", "fileStoreIds is required")
    listed, by_id = [], {}
    if principal.may_act_in(tenant):
        session = db.session()
        for file_id in ids[:100]:
            row = digit.get_file(session, file_id)
            # Unknown ids and other tenants' ids are left out, as DIGIT searches do.
            if row is not None and row.tenant_id == tenant:
                url = signed_url(row)
                listed.append({"id": str(row.id), "tenantId": tenant, "url": url})
                by_id[str(row.id)] = url
    return {"fileStoreIds": listed, **by_id}


def _serve(row: digit.DigitFile):
    path = blobs().path(row.sha256)
    return send_file(path, mimetype=row.content_type or "application/octet-stream", as_attachment=True,
                     download_name=row.filename or str(row.id), conditional=True, etag=row.sha256,
                     max_age=0)


def _not_found():
    return digit_error("EG_FILESTORE_NOT_FOUND", "no such file")


@bp.get("/filestore/v1/files/<file_id>/content")
def download(file_id: str):
    row = digit.get_file(db.session(), file_id)
    signature = request.args.get("signature")
    if signature:
        try:
            expires = int(request.args.get("expires", "0"))
        except ValueError:
            expires = 0
        tenant = request.args.get("tenantId", "")
        expected = _signature(file_id.lower(), tenant, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")) \
                or expires < time.time():
            raise Unauthorized("the download link is invalid or has expired")
        if row is None or row.tenant_id != tenant:
            raise _not_found()
        return _serve(row)
    principal = current_principal()
    if row is None or not principal.may_act_in(row.tenant_id):
        raise _not_found()
    return _serve(row)


@bp.get("/filestore/v1/files/id")
@require()
def download_by_query():
    """DIGIT's own download route: ?tenantId=&fileStoreId=."""
    principal = current_principal()
    tenant = tenant_param(request.args.get("tenantId"))
    row = digit.get_file(db.session(), request.args.get("fileStoreId", ""))
    if row is None or row.tenant_id != tenant or not principal.may_act_in(tenant):
        raise _not_found()
    return _serve(row)
