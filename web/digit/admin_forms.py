"""Admin API for campaign forms (fieldsync's own API, so fieldsync's error shape):
POST /admin/forms publishes one form version (201; 409 when the version is not above the latest),
GET /admin/forms lists published versions, newest first."""
from __future__ import annotations

from flask import Blueprint, request

from models.digit import store as digit
from web import db
from web.auth import check_tenant, current_principal, require
from web.errors import BadRequest, Conflict
from web.jsonbody import read_json
from workers.digit import forms

bp = Blueprint("digit_admin_forms", __name__)


def form_row(row: digit.DigitForm) -> dict:
    return {"id": row.id, "tenantId": row.tenant_id, "campaignId": row.campaign_id, "schema": row.schema,
            "version": row.version, "createdBy": row.created_by,
            "createdAt": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else None,
            "form": row.body}


def publish(session, body, created_by: str | None) -> digit.DigitForm:
    """workers.digit.forms.publish, its refusals as fieldsync API errors (the API and the CLI use it)."""
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
    if isinstance(body, dict) and isinstance(body.get("tenantId"), str):
        check_tenant(principal, body["tenantId"])
    row = publish(db.session(), body, principal.user_id)
    db.commit()
    return form_row(row), 201


@bp.get("/admin/forms")
@require("admin")
def list_():
    principal = current_principal()
    tenant = request.args.get("tenantId")
    if tenant:
        tenants = [check_tenant(principal, tenant)]
    else:
        tenants = None if principal.is_system else [principal.tenant_id]
    rows = digit.list_forms(db.session(), tenant_ids=tenants, campaign_id=request.args.get("campaignId"),
                            schema=request.args.get("schema"))
    if request.args.get("latest", "").lower() in {"1", "true", "yes"}:
        seen, latest = set(), []
        for row in rows:
            key = (row.tenant_id, row.campaign_id, row.schema)
            if key not in seen:
                seen.add(key)
                latest.append(row)
        rows = latest
    return {"forms": [form_row(r) for r in rows]}
