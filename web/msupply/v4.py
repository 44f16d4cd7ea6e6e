"""mSupply v4 endpoints, under both /sync/v4/ and /api/v4/ (the mobile app calls the latter):
name_store_join (make a patient visible in a store) and patient_history."""
from __future__ import annotations

from flask import Blueprint

from models.msupply import NAMESPACE
from models.msupply import store as msupply
from web import context, db
from web.errors import BadRequest
from web.inputs import clean_text, query_text
from web.jsonbody import read_json_object
from web.msupply.auth import authenticate_site
from web.msupply.envelope import json_response
from web.msupply.history import patient_history

sync_bp = Blueprint("msupply_v4", __name__, url_prefix="/sync/v4")
api_bp = Blueprint("msupply_api_v4", __name__, url_prefix="/api/v4")

MAX_ID = 256  # longest name or store id a request may name


def name_store_join():
    site = authenticate_site(4)
    body = read_json_object("the body must be an object with name_ID and store_ID")
    name_id, store_id = body.get("name_ID"), body.get("store_ID")
    if not (isinstance(name_id, str) and name_id and isinstance(store_id, str) and store_id):
        raise BadRequest("name_ID and store_ID are required")
    clean_text(name_id, "name_ID", MAX_ID)
    clean_text(store_id, "store_ID", MAX_ID)
    try:
        join = msupply.join_name_to_store(db.session(), site, name_id, store_id, hooks=context.hooks(NAMESPACE))
    except LookupError as exc:
        raise BadRequest(str(exc)) from None
    db.commit()
    return json_response(join)


def history():
    site = authenticate_site(4)
    name_id = query_text("id", MAX_ID)
    if not name_id:
        raise BadRequest("id is required")
    return json_response(patient_history(db.session(), site.tenant_id, name_id))


for _bp in (sync_bp, api_bp):
    _bp.add_url_rule("/name_store_join", view_func=name_store_join, methods=["POST"])
    _bp.add_url_rule("/patient_history", view_func=history, methods=["GET"])
