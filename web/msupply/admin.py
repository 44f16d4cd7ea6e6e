"""Admin JSON API for mSupply satellites (admin JWT; the tenant comes from the token):
POST/GET /admin/sites, GET/PATCH/DELETE /admin/sites/<id>, POST /admin/sites/<id>/reset-hardware.
The password is stored only as a slow hash and never returned."""
from __future__ import annotations

from flask import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from models.msupply import SERVER_SITE_ID
from models.msupply import store as msupply
from web import context, db
from web.auth import current_principal, require
from web.errors import BadRequest, Conflict, NotFound
from web.inputs import INT32_MAX
from web.jsonbody import read_json_object
from web.msupply.envelope import json_response
from web.ops.openapi import admin_operation, answer
from web.ops.schemas import CleanText, StrictInteger, load, not_blank

bp = Blueprint("msupply_admin", __name__, url_prefix="/admin/sites")

MAX_TEXT = 256


class SiteIn(Schema):
    """A satellite site as an admin registers it (PATCH: any of these; `id` only as it is)."""
    class Meta:
        unknown = RAISE

    id = StrictInteger(required=True, validate=validate.Range(min=1, max=INT32_MAX),
                       metadata={"description": f"the site id the satellite syncs as (not {SERVER_SITE_ID}, "
                                                "this server)"})
    name = CleanText(required=True, max_length=128, validate=not_blank,
                     metadata={"description": "the user name the satellite signs in with"})
    password = CleanText(required=True, max_length=1024, validate=not_blank,
                         metadata={"description": "stored only as a slow hash, never returned"})
    store_id = CleanText(max_length=MAX_TEXT)
    name_id = CleanText(max_length=MAX_TEXT)
    supplying_store_id = CleanText(max_length=MAX_TEXT)
    supplying_store_name_id = CleanText(max_length=MAX_TEXT)


class SiteOut(Schema):
    id = fields.Integer()
    name = fields.String()
    tenant = fields.String()
    store_id = fields.String(allow_none=True)
    name_id = fields.String(allow_none=True)
    supplying_store_id = fields.String(allow_none=True)
    supplying_store_name_id = fields.String(allow_none=True)
    hardware_id = fields.String(allow_none=True, metadata={"description": "the device bound at first sign-in"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SiteList(Schema):
    sites = fields.List(fields.Nested(SiteOut))


class SiteDeleted(Schema):
    deleted = fields.Boolean()
    id = fields.Integer()


def site_view(site: msupply.Site) -> dict:
    return {"id": site.site_id, "name": site.name, "tenant": site.tenant_id, "store_id": site.store_id,
            "name_id": site.name_id, "supplying_store_id": site.supplying_store_id,
            "supplying_store_name_id": site.supplying_store_name_id, "hardware_id": site.hardware_id,
            "created_at": site.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": site.updated_at.isoformat().replace("+00:00", "Z")}


def _rounds() -> int:
    return context.settings().bcrypt_rounds


def _fields(body, *, creating: bool) -> dict:
    return load(SiteIn(), body, code="invalid_site", partial=not creating)


def _load(site_id: int) -> msupply.Site:
    if not 1 <= site_id <= INT32_MAX:
        raise NotFound("no such site")
    site = msupply.get_site(db.session(), current_principal().tenant_id, site_id)
    if site is None:
        raise NotFound("no such site")
    return site


@bp.post("")
@require("admin")
def create():
    given = _fields(read_json_object(), creating=True)
    site_id = given.pop("id")
    if site_id == SERVER_SITE_ID:
        raise BadRequest(f"site {SERVER_SITE_ID} is the primary (this server)", code="invalid_site",
                         fields={"id": [f"{SERVER_SITE_ID} is this server"]})
    session = db.session()
    if msupply.site_by_name(session, given["name"]) is not None:
        raise Conflict("a site with that name already exists")
    try:
        site = msupply.create_site(session, tenant_id=current_principal().tenant_id, site_id=site_id,
                                   rounds=_rounds(), **given)
    except msupply.SiteExists:
        raise Conflict("a site with that id or name already exists") from None
    view = site_view(site)
    db.commit()
    return json_response(view, 201)


@bp.get("")
@require("admin")
def list_all():
    return json_response({"sites": [site_view(s) for s in msupply.list_sites(db.session(),
                                                                              current_principal().tenant_id)]})


@bp.get("/<int:site_id>")
@require("admin")
def get_one(site_id: int):
    return json_response(site_view(_load(site_id)))


@bp.patch("/<int:site_id>")
@require("admin")
def update(site_id: int):
    site = _load(site_id)
    given = _fields(read_json_object(), creating=False)
    if given.pop("id", site_id) != site_id:
        raise BadRequest("a site's id cannot be changed", code="invalid_site", fields={"id": ["cannot be changed"]})
    session = db.session()
    if "name" in given and given["name"] != site.name and msupply.site_by_name(session, given["name"]):
        raise Conflict("a site with that name already exists")
    password = given.pop("password", None)
    site = msupply.update_site(session, site, password=password, rounds=_rounds(), **given)
    view = site_view(site)
    db.commit()
    return json_response(view)


@bp.delete("/<int:site_id>")
@require("admin")
def delete(site_id: int):
    msupply.delete_site(db.session(), _load(site_id))
    db.commit()
    return json_response({"deleted": True, "id": site_id})


@bp.post("/<int:site_id>/reset-hardware")
@require("admin")
def reset_hardware(site_id: int):
    site = _load(site_id)
    msupply.reset_hardware(db.session(), site)
    view = site_view(site)
    db.commit()
    return json_response(view)


# --- its description in /openapi.json ------------------------------------------------------------------

SITE_ID = {"name": "site_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
SCHEMAS = {"SiteIn": SiteIn, "SiteOut": SiteOut, "SiteList": SiteList, "SiteDeleted": SiteDeleted}


OPENAPI_PATHS = {
    "/admin/sites": {
        "post": admin_operation("Register an mSupply satellite site (admin; the tenant is the admin's)", "SiteOut",
                                "201", "SiteIn", described="the site",
                                **{"409": answer("a site with that id or name exists")}),
        "get": admin_operation("The tenant's sites", "SiteList")},
    "/admin/sites/<int:site_id>": {
        "get": {**admin_operation("A site", "SiteOut", described="the site"), "parameters": [SITE_ID]},
        "patch": {**admin_operation("Change a site's name, password or stores (any of SiteIn's fields; not its id)",
                                    "SiteOut", body="SiteIn", described="the site",
                                    **{"409": answer("a site with that name exists")}), "parameters": [SITE_ID]},
        "delete": {**admin_operation("Remove a site", "SiteDeleted"), "parameters": [SITE_ID]}},
    "/admin/sites/<int:site_id>/reset-hardware": {
        "post": {**admin_operation("Unbind the site's device, so a new one can sign in", "SiteOut",
                                   described="the site"), "parameters": [SITE_ID]}},
}
