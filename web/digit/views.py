"""DIGIT Health sync endpoints: hand in a sync file (`_create`), read its status, fetch campaign forms.

A sync is a `digit.sync_file` job keyed by (tenant, campaign, file hash): the same file handed in twice is
the same sync, whoever refers to it and however. Status and progress are read from the jobs table."""
from __future__ import annotations

from flask import Blueprint

from models.digit import store as digit
from models.jobs import first_errors
from web import context, db, devices
from web.digit.auth import authenticate, require_tenant, require_writer
from web.digit.envelope import (
    check_document, digit_error, read_envelope, required_text, response_info, sync_time, text_field,
)
from web.digit.filestore import file_id_from_reference
from web.ops.jobs import progress_percent
from workers.digit.jobs import submit_sync_file

bp = Blueprint("digit_sync", __name__)

FIRST_ERRORS = 10
STATUS_NAMES = {"QUEUED": "CREATED", "RUNNING": "IN_PROGRESS", "COMPLETED": "COMPLETED", "FAILED": "FAILED",
                "CANCELLED": "CANCELLED"}


def sync_view(job, errors: list | None = None) -> dict:
    params = job.params or {}
    total = job.progress_total
    percent = progress_percent(job)
    view = {
        "createdAt": sync_time(job.created_at), "modifiedAt": sync_time(job.updated_at),
        "campaignId": params.get("campaignId"), "tenantId": job.tenant_id, "syncId": str(job.id),
        "status": STATUS_NAMES.get(job.status, job.status), "file": params.get("file"),
        "createdBy": job.created_by, "modifiedBy": job.created_by,
        # fieldsync's additions: live progress, counts and the first rejected entities.
        "progress": {"done": job.progress_done, "total": total, "percent": percent},
        "counts": {key: (job.counts or {}).get(key, 0) for key in ("accepted", "duplicate", "rejected")},
    }
    if job.error_code:
        view["failure"] = {"code": job.error_code, "reason": job.error_detail}
    if errors is not None:
        view["errors"] = [{"position": e.position, "clientReferenceId": e.record_id, "code": e.code,
                           "field": e.path, "message": e.message} for e in errors]
    return view


@bp.post("/sync/file/v1/_create")
def create():
    info, sync = read_envelope()
    principal = authenticate(info)
    require_writer(principal)
    tenant = required_text(sync, "tenantId", max_length=128)
    campaign = required_text(sync, "campaignId")
    reference = required_text(sync, "file", max_length=2048)
    require_tenant(principal, tenant)
    devices.seen(dialect="digit", tenant_id=tenant, client_id=principal.username, activity="push",
                 app_version=devices.header("x-app-version"))
    file_id = file_id_from_reference(reference)
    session = db.session()
    stored = digit.get_file(session, file_id)
    if stored is None or not principal.may_act_in(stored.tenant_id):
        raise digit_error("INVALID_FILE", "no such file in the filestore", params=[reference])
    audit = sync.get("auditDetails") if isinstance(sync.get("auditDetails"), dict) else None
    if audit is not None:
        check_document(audit, "sync.auditDetails")
    job = submit_sync_file(session, context.celery(), tenant_id=tenant, campaign_id=campaign, reference=reference,
                           stored=stored, audit=audit, created_by=principal.user_id)
    return {"responseInfo": response_info(info), "sync": sync_view(job)}


@bp.post("/sync/file/status/v1/_search")
def status():
    info, sync = read_envelope()
    principal = authenticate(info)
    tenant = required_text(sync, "tenantId", max_length=128)
    sync_id = required_text(sync, "syncId")
    campaign = sync.get("campaignId")
    session = db.session()
    job = digit.find_sync(session, sync_id)
    if (job is None or job.tenant_id != tenant or not principal.may_act_in(job.tenant_id)
            or (campaign and (job.params or {}).get("campaignId") != campaign)):
        # Another tenant's sync answers exactly like an unknown one.
        raise digit_error("SYNC_NOT_FOUND", f"no sync {sync_id} in tenant {tenant}", params=[sync_id])
    errors = first_errors(session, job.id, FIRST_ERRORS)
    return {"responseInfo": response_info(info), "sync": sync_view(job, errors)}


MAX_FORMS = 1000


def _version(value) -> int | None:
    """The client's version of a form: an integer, or its text; anything else counts as none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) <= 20:
        return int(value.strip())
    return None


def _schema_id(value) -> str | None:
    if isinstance(value, bool) or isinstance(value, (int, float)):
        value = str(value)
    return text_field(value, "schemaId", where="sync.forms[]", required=False)


@bp.post("/sync/forms/v1/_search")
def forms():
    """§7.15: syncAll → every form at its latest version; otherwise each requested schema's latest
    version when it is newer than the client's (or the client sent no usable version). Unknown schemas
    are left out."""
    info, sync = read_envelope()
    principal = authenticate(info)
    tenant = required_text(sync, "tenantId", max_length=128)
    campaign = required_text(sync, "campaignId")
    require_tenant(principal, tenant)
    devices.seen(dialect="digit", tenant_id=tenant, client_id=principal.username, activity="pull",
                 app_version=devices.header("x-app-version"))
    sync_all = sync.get("syncAll")
    if sync_all is not None and not isinstance(sync_all, bool):
        raise digit_error("JsonMappingException", "sync.syncAll must be true or false")
    requested = sync.get("forms") or []
    if not isinstance(requested, list) or not all(isinstance(f, dict) for f in requested):
        raise digit_error("JsonMappingException", "sync.forms must be a list of {schemaId, version}")
    if len(requested) > MAX_FORMS:
        raise digit_error("Size.sync.forms", f"sync.forms may list at most {MAX_FORMS} forms")
    session = db.session()
    if sync_all:
        rows = digit.latest_forms(session, tenant_id=tenant, campaign_id=campaign)
    else:
        have = {}
        for f in requested:
            schema = _schema_id(f.get("schemaId"))
            if schema:
                have[schema] = _version(f.get("version"))
        rows = [row for row in digit.latest_forms(session, tenant_id=tenant, campaign_id=campaign,
                                                  schemas=list(have))
                if have.get(row.schema) is None or have[row.schema] < row.version]
    return {"responseInfo": response_info(info), "forms": [row.body for row in rows]}
