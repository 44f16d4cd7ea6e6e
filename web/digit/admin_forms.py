"""Admin API for campaign forms (fieldsync's own API, so fieldsync's error shape):
POST /admin/forms publishes one form version (201; 409 when the version is not above the latest),
GET /admin/forms lists published versions, newest first."""
from __future__ import annotations

from flask import Blueprint, request
from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields

from models.digit import store as digit
from web import db
from web.auth import check_tenant, current_principal, require
from web.errors import BadRequest, Conflict
from web.inputs import INT32_MAX, json_problem
from web.ops.openapi import admin_operation, answer
from web.ops.schemas import CleanText, load, not_blank
from web.jsonbody import read_json
from workers.digit import forms

bp = Blueprint("digit_admin_forms", __name__)


def form_row(row: digit.DigitForm) -> dict:
    return {"id": row.id, "tenantId": row.tenant_id, "campaignId": row.campaign_id, "schema": row.schema,
            "version": row.version, "createdBy": row.created_by,
            "createdAt": row.created_at.isoformat().replace("+00:00", "Z") if row.created_at else None,
            "form": row.body}


class FormVersion(fields.Field):
    """A form's version: a positive 32-bit integer, or such a number written in ASCII digits."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.isdigit() and len(text) <= 10):
                raise ValidationError(VERSION_RULE)
            value = int(text)
        if isinstance(value, bool) or not isinstance(value, int) or value > INT32_MAX:
            raise ValidationError(VERSION_RULE)
        return value  # below 1: the form's own checks say so, with the rest of its problems


VERSION_RULE = f"must be a positive integer of at most {INT32_MAX}"
MAX_FORM_TEXT = 10_000


class FormIn(Schema):
    """A campaign form version. Its identifying members are checked here (type, length, storable text);
    its elements and their validations by the form compiler, which reports every problem at once."""
    class Meta:
        unknown = INCLUDE

    tenantId = CleanText(required=True, max_length=128, validate=not_blank)
    campaignId = CleanText(required=True, max_length=256, validate=not_blank)
    schema = CleanText(required=True, max_length=256, validate=not_blank,
                       metadata={"description": "the entity type the form describes (household, individual, ...)"})
    version = FormVersion(required=True, metadata={"type": "integer", "minimum": 1, "maximum": INT32_MAX,
                                                   "description": "above every published version of the schema"})
    elements = fields.List(fields.Dict(), metadata={
        "description": "one per field: `key` (dotted for nested objects), `dataType`, `validations` "
                       "(`{name, attribute}`: required, min, max, minLength, maxLength, minValue, maxValue, "
                       "pattern, allowed values)"})


class FormsQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    tenantId = CleanText(max_length=128, metadata={"description": "default: the admin's own tenant"})
    campaignId = CleanText(max_length=256)
    schema = CleanText(max_length=256)
    latest = fields.Boolean(load_default=False, metadata={"description": "only the newest version of each schema"})


class FormOut(Schema):
    id = fields.String()
    tenantId = fields.String()
    campaignId = fields.String()
    schema = fields.String()
    version = fields.Integer()
    createdBy = fields.String(allow_none=True)
    createdAt = fields.DateTime(allow_none=True)
    form = fields.Dict(metadata={"description": "the form as published"})


class FormList(Schema):
    forms = fields.List(fields.Nested(FormOut))


def check_form_input(body) -> None:
    """What PostgreSQL could not store, refused before the form's own checks: a NUL or lone surrogate
    anywhere, over-long ids or text, a version beyond a 32-bit integer. Missing members are left to the
    form's own checks, which name them with every other problem of the form."""
    if not isinstance(body, dict):
        return  # the form's own checks say what is wrong
    load(FormIn(), body, code="invalid_form", partial=True)
    problem = json_problem(body, max_string=MAX_FORM_TEXT)
    if problem is not None:
        reason, message, path = problem
        raise BadRequest(f"{path or 'the form'} {message}", code="invalid_form")


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
    query = {k: (v if not isinstance(v, str) or v.strip() else None) for k, v in
             load(FormsQuery(), request.args).items()}  # a blank filter is no filter
    tenant = query.get("tenantId")
    if tenant:
        tenants = [check_tenant(principal, tenant)]
    else:
        tenants = None if principal.is_system else [principal.tenant_id]
    rows = digit.list_forms(db.session(), tenant_ids=tenants, campaign_id=query.get("campaignId"),
                            schema=query.get("schema"))
    if query["latest"]:
        seen, latest = set(), []
        for row in rows:
            key = (row.tenant_id, row.campaign_id, row.schema)
            if key not in seen:
                seen.add(key)
                latest.append(row)
        rows = latest
    return {"forms": [form_row(r) for r in rows]}


# --- its description in /openapi.json ------------------------------------------------------------------

SCHEMAS = {"FormIn": FormIn, "FormsQuery": FormsQuery, "FormOut": FormOut, "FormList": FormList}
OPENAPI_PATHS = {
    "/admin/forms": {
        "post": admin_operation(
            "Publish a version of a campaign form (admin, in its tenant subtree)", "FormOut", "201", "FormIn",
            described="the published form",
            **{"400": answer("invalid members (`fields`) or form problems (`problems`)", "Problem"),
               "409": answer("the version is not above the latest published (`latest_version`)")}),
        "get": {**admin_operation("Published form versions, newest first", "FormList", described="forms"),
                "parameters": [{"in": "query", "schema": "FormsQuery"}]}},
}
