"""Admin API for campaign forms (fieldsync's own API, so fieldsync's error shape):
POST /admin/forms publishes one form version (201; 409 when the version is not above the latest),
GET /admin/forms lists published versions, newest first."""
from __future__ import annotations

from flask import Blueprint, request

from models.digit import store as digit
from web import db
from web.auth import check_tenant, current_principal, require
from web.errors import BadRequest, Conflict
from web.inputs import INT32_MAX, clean_text, json_problem, query_text
from web.jsonbody import read_json
from workers.digit import forms

bp = Blueprint("digit_admin_forms", __name__)


def form_row(row: digit.DigitForm) -> dict:
    return {"id": row.id, "tenantId": row.tenant_id, "campaignId": row.campaign_id, "schema": row.schema,
            "version": row.version, "createdBy": row.created_by,
            "createdAt": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else None,
            "form": row.body}


# The longest text the identifying members of a form may have (their columns' sizes).
ID_LENGTHS = {"tenantId": 128, "campaignId": 256, "schema": 256}
MAX_FORM_TEXT = 10_000


def check_form_input(body) -> None:
    """What PostgreSQL could not store, refused before the form's own checks: a NUL or lone surrogate
    anywhere, over-long ids or text, a version beyond a 32-bit integer."""
    if not isinstance(body, dict):
        return  # the form's own checks say what is wrong
    for name, length in ID_LENGTHS.items():
        clean_text(body.get(name), name, length, required=False, code="invalid_form")
    problem = json_problem(body, max_string=MAX_FORM_TEXT)
    if problem is not None:
        reason, message, path = problem
        raise BadRequest(f"{path or 'the form'} {message}", code="invalid_form")
    version = body.get("version")
    if isinstance(version, str):
        version = version.strip()
        if version.isdigit() and not (version.isascii() and len(version) <= 10):
            raise BadRequest("version must be a positive integer of at most 2147483647", code="invalid_form")
        version = int(version) if version.isdigit() else None
    if isinstance(version, int) and not isinstance(version, bool) and version > INT32_MAX:
        raise BadRequest(f"version must be a positive integer of at most {INT32_MAX}", code="invalid_form")


def publish(session, body, created_by: str | None) -> digit.DigitForm:
    """workers.digit.forms.publish, its refusals as fieldsync API errors (the API and the CLI use it)."""
    check_form_input(body)
    try:
        return forms.publish(session, body, created_by)
    except forms.FormRejected as exc:
        raise BadRequest(str(exc), code="invalid_form", problems=exc.problems) from None
    except digit.VersionNotNewer as exc:
        raise Conflict(f"version {body['version']} of {body['schema']} for campaign {body['campaignId']} is not "
                       f"newer than the published version {exc.latest}", latest_version=exc.latest) from None


@bp.post("/admin/forms")
@require("admin")
def create():
    principal = current_principal()
    body = read_json()
    check_form_input(body)
    if isinstance(body, dict) and isinstance(body.get("tenantId"), str):
        check_tenant(principal, body["tenantId"])
    row = publish(db.session(), body, principal.user_id)
    db.commit()
    return form_row(row), 201


@bp.get("/admin/forms")
@require("admin")
def list_():
    principal = current_principal()
    tenant = query_text("tenantId", 128)
    if tenant:
        tenants = [check_tenant(principal, tenant)]
    else:
        tenants = None if principal.is_system else [principal.tenant_id]
    rows = digit.list_forms(db.session(), tenant_ids=tenants, campaign_id=query_text("campaignId", 256),
                            schema=query_text("schema", 256))
    if request.args.get("latest", "").lower() in {"1", "true", "yes"}:
        seen, latest = set(), []
        for row in rows:
            key = (row.tenant_id, row.campaign_id, row.schema)
            if key not in seen:
                seen.add(key)
                latest.append(row)
        rows = latest
    return {"forms": [form_row(r) for r in rows]}
