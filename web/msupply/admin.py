"""Admin JSON API for mSupply satellites (admin JWT; the tenant comes from the token):
POST/GET /admin/sites, GET/PATCH/DELETE /admin/sites/<id>, POST /admin/sites/<id>/reset-hardware.
The password is stored only as a slow hash and never returned."""
from __future__ import annotations

from flask import Blueprint

from models.msupply import SERVER_SITE_ID
from models.msupply import store as msupply
from web import context, db
from web.auth import current_principal, require
from web.errors import BadRequest, Conflict, NotFound
from web.inputs import INT32_MAX, clean_text, is_clean_text
from web.jsonbody import read_json_object
from web.msupply.envelope import json_response

bp = Blueprint("msupply_admin", __name__, url_prefix="/admin/sites")

TEXT_FIELDS = ("name",) + msupply.SITE_FIELDS
MAX_TEXT = 256
MAX_LENGTHS = {"name": 128, "password": 1024}


def site_view(site: msupply.Site) -> dict:
    return {"id": site.site_id, "name": site.name, "tenant": site.tenant_id, "store_id": site.store_id,
            "name_id": site.name_id, "supplying_store_id": site.supplying_store_id,
            "supplying_store_name_id": site.supplying_store_name_id, "hardware_id": site.hardware_id,
            "created_at": site.created_at.isoformat().replace("+00:00", "Z"),
            "updated_at": site.updated_at.isoformat().replace("+00:00", "Z")}


def _rounds() -> int:
    return context.settings().bcrypt_rounds


def _fields(body: dict, *, creating: bool) -> dict:
    unknown = set(body) - set(TEXT_FIELDS) - {"id", "password"}
    if unknown:
        named = sorted(k for k in unknown if is_clean_text(k, 64))  # never repeat a long or unstorable key
        if len(named) < len(unknown):
            named.append(f"{len(unknown) - len(named)} with a long or invalid name")
        raise BadRequest(f"unknown field(s): {', '.join(named)}")
    out = {}
    for key in TEXT_FIELDS + ("password",):
        if key in body:
            if not isinstance(body[key], str):
                raise BadRequest(f"{key} must be a string")
            out[key] = clean_text(body[key], key, MAX_LENGTHS.get(key, MAX_TEXT), required=False) or body[key]
    for key in ("name", "password"):
        if (creating or key in out) and not out.get(key, "").strip():
            raise BadRequest(f"{key} is required")
    return out


def _site_id(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= INT32_MAX:
        raise BadRequest(f"id must be a positive integer of at most {INT32_MAX}")
    return value


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
    body = read_json_object()
    site_id = _site_id(body.get("id"))
    if site_id == SERVER_SITE_ID:
        raise BadRequest(f"site {SERVER_SITE_ID} is the primary (this server)")
    fields = _fields(body, creating=True)
    session = db.session()
    if msupply.site_by_name(session, fields["name"]) is not None:
        raise Conflict("a site with that name already exists")
    try:
        site = msupply.create_site(session, tenant_id=current_principal().tenant_id, site_id=site_id,
                                   rounds=_rounds(), **fields)
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
    body = read_json_object()
    if "id" in body and body["id"] != site_id:
        raise BadRequest("a site's id cannot be changed")
    fields = _fields(body, creating=False)
    session = db.session()
    if "name" in fields and fields["name"] != site.name and msupply.site_by_name(session, fields["name"]):
        raise Conflict("a site with that name already exists")
    password = fields.pop("password", None)
    site = msupply.update_site(session, site, password=password, rounds=_rounds(), **fields)
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
