"""mSupply v4 endpoints, under both /sync/v4/ and /api/v4/ (the mobile app calls the latter):
name_store_join (make a patient visible in a store) and patient_history."""
from __future__ import annotations

import uuid

from flask import Blueprint, request

from models import msupply
from models.engine import Incoming, apply_chunk, get_record
from web import db
from web.errors import BadRequest
from web.jsonbody import read_json
from web.msupply.auth import authenticate_site
from web.msupply.history import patient_history
from web.msupply.sync import json_response
from sqlalchemy import text

sync_bp = Blueprint("msupply_v4", __name__, url_prefix="/sync/v4")
api_bp = Blueprint("msupply_api_v4", __name__, url_prefix="/api/v4")


def _live(session, tenant_id: str, key: str) -> bool:
    row = get_record(session, tenant_id=tenant_id, namespace=msupply.NAMESPACE, key=key)
    return row is not None and not row.deleted


def name_store_join():
    site = authenticate_site(4)
    body = read_json()
    if not isinstance(body, dict):
        raise BadRequest("the body must be an object with name_ID and store_ID")
    name_id, store_id = body.get("name_ID"), body.get("store_ID")
    if not (isinstance(name_id, str) and name_id and isinstance(store_id, str) and store_id):
        raise BadRequest("name_ID and store_ID are required")
    session = db.session()
    if not _live(session, site.tenant_id, f"name:{name_id}"):
        raise BadRequest(f"name {name_id} is not known")
    if not _live(session, site.tenant_id, f"store:{store_id}"):
        raise BadRequest(f"store {store_id} is not known")
    existing = session.execute(text(f"""
        SELECT substr(record_key, length('name_store_join:') + 1) FROM records
         WHERE tenant_id = :t AND namespace = '{msupply.NAMESPACE}' AND record_type = 'name_store_join'
           AND NOT deleted AND data ->> 'name_ID' = :n AND data ->> 'store_ID' = :s LIMIT 1
    """), {"t": site.tenant_id, "n": name_id, "s": store_id}).scalar()
    if existing is not None:
        return json_response({"name_ID": name_id, "store_ID": store_id, "inactive": False, "ID": existing})
    join_id = uuid.uuid4().hex.upper()
    data = {"ID": join_id, "name_ID": name_id, "store_ID": store_id, "inactive": False}
    # Through the engine, so the join gets a version and reaches the other sites of the store. The
    # asking site builds its own copy from this answer, so it is the change's origin (no echo).
    apply_chunk(session, tenant_id=site.tenant_id, namespace=msupply.NAMESPACE, actor=msupply.site_origin(site.site_id),
                origin=msupply.site_origin(site.site_id), records=[
                    Incoming(position=0, key=f"name_store_join:{join_id}", record_type="name_store_join", data=data,
                             meta={"store_id": store_id})])
    db.commit()
    return json_response(data)


def history():
    site = authenticate_site(4)
    name_id = request.args.get("id")
    if not name_id:
        raise BadRequest("id is required")
    return json_response(patient_history(db.session(), site.tenant_id, name_id))


for _bp in (sync_bp, api_bp):
    _bp.add_url_rule("/name_store_join", view_func=name_store_join, methods=["POST"])
    _bp.add_url_rule("/patient_history", view_func=history, methods=["GET"])
