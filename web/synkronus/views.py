"""POST /sync/push (a job through the workers, answered within a bounded wait or 202), POST /sync/pull
(keyset pages spliced from stored JSON text) and GET /api/versions."""
from __future__ import annotations

import orjson
from flask import Blueprint, current_app, request

from models import jobs, receipts
from models.synkronus.store import advance_cursor, pull_page
from models.tables import TERMINAL_STATUSES
from web import context, db
from web.auth import claim_proof, current_principal, prove_claim, require
from web.devices import header, seen
from web.errors import BadRequest, Conflict, TooLarge
from web.inputs import bounded_int, clean_text, query_text
from web.jsonbody import body_bytes, read_json_object
from web.synkronus.envelope import API_VERSIONS, CURRENT_API_VERSION
from workers import doorbell
from workers.synkronus.jobs import TransmissionConflict, accept_push

bp = Blueprint("synkronus_sync", __name__)

PULL_DEFAULT_LIMIT = 50
PULL_MAX_LIMIT = 500
CLIENT_ID_MAX = 250
MAX_SCHEMA_TYPES = 100


def _json_response(body: bytes, status: int = 200):
    return current_app.response_class(body, status=status, mimetype="application/json")


def _app_version() -> str | None:
    """The client app's version, from the headers Formulus-style clients send."""
    return header("x-app-version", "x-formulus-version")


@bp.get("/api/versions")
@require()
def api_versions():
    return {"versions": API_VERSIONS, "current": CURRENT_API_VERSION}


@bp.post("/sync/push")
@require("read-write", "admin")
def push():
    body = read_json_object(code="invalid_request")
    raw = body_bytes()
    transmission_id = clean_text(body.get("transmission_id"), "transmission_id", 500, code="invalid_request")
    client_id = clean_text(body.get("client_id"), "client_id", CLIENT_ID_MAX, code="invalid_request")
    records = body.get("records")
    if not isinstance(records, list):
        raise BadRequest("records must be an array", code="invalid_request")
    cap = context.settings().max_records_per_push
    if len(records) > cap:
        raise TooLarge(f"a push may carry at most {cap} records; split the batch", code="too_many_records")
    seen(dialect="synkronus", tenant_id=current_principal().tenant_id, client_id=client_id, activity="push",
         records=len(records), app_version=_app_version())

    principal = current_principal()
    try:
        created = accept_push(db.session(), context.celery(), context.blobs(), context.settings(),
                              tenant_id=principal.tenant_id, actor=principal.username, client_id=client_id,
                              transmission_id=transmission_id, raw=raw, total=len(records))
    except TransmissionConflict:
        raise Conflict("this transmission_id was already used with a different payload",
                       code="transmission_conflict") from None
    return _answer(principal.tenant_id, client_id, transmission_id, context.settings().sync_wait_seconds,
                   new_job=created)


def _answer(tenant: str, client_id: str, transmission_id: str, wait_seconds: float, new_job=None):
    """The stored answer when there is one; otherwise wait for the job (bounded), then 202. `new_job`:
    the job this request just queued (nothing can be stored for it yet, so the first look is skipped)."""
    session = db.session()
    state = {"job_id": None if new_job is None else str(new_job), "status": "QUEUED", "skip": new_job is not None}

    def ready():
        if state.pop("skip", False) and wait_seconds > 0:
            return None
        try:
            found = receipts.answer_or_status(session, tenant, client_id, transmission_id)
            if found is not None and found.body is not None:
                return _json_response(bytes(found.body), found.status_code or 200)
            if found is not None and found.job_id is not None:
                state.update(job_id=str(found.job_id), status=found.job_status)
                return _failed(found.job_id, found.job_status, found.job_error)
            return None
        finally:
            session.commit()  # no snapshot or connection held while waiting

    answer = ready()
    if answer is None and state["job_id"] is not None and wait_seconds > 0:
        answer = doorbell.wait_until(context.redis(), state["job_id"], wait_seconds, ready)
    if answer is not None:
        return answer
    if state["job_id"] is not None:  # a 202 says the push is stored: its job's lazy commit goes to disk first
        jobs.make_durable(session, state["job_id"])
    body = {"job_id": state["job_id"], "status": state["status"], "status_url": f"/jobs/{state['job_id']}",
            "message": "the push is stored and still being applied; poll status_url or resend the same "
                       "transmission_id for the final answer"}
    response = _json_response(orjson.dumps(body), 202)
    response.headers["Location"] = f"/jobs/{state['job_id']}"
    return response


def _failed(job_id, status: str | None, error_code: str | None):
    """The answer for a push whose job ended without storing one (a COMPLETED job always stores one)."""
    if status not in TERMINAL_STATUSES or status == "COMPLETED":
        return None
    body = {"error": error_code or "job_failed", "message": "Failed to process sync data", "job_id": str(job_id)}
    return _json_response(orjson.dumps(body), 500)


def _limit() -> int:
    try:
        value = int(request.args.get("limit", PULL_DEFAULT_LIMIT))
    except ValueError:
        return PULL_DEFAULT_LIMIT
    if value <= 0:
        return PULL_DEFAULT_LIMIT
    return min(value, PULL_MAX_LIMIT)


@bp.post("/sync/pull")
@require(proven_by_view=True)
@db.autocommit
def pull():
    body = read_json_object(code="invalid_request")
    client_id = clean_text(body.get("client_id"), "client_id", CLIENT_ID_MAX, code="invalid_request")
    since = body.get("since") or {}
    if not isinstance(since, dict):
        raise BadRequest("since must be an object", code="invalid_request")
    since_version = since.get("version", 0)
    if since_version is None:
        since_version = 0
    since_version = bounded_int(since_version, "since.version", code="invalid_request")
    types = body.get("schema_types") or []
    if not isinstance(types, list) or len(types) > MAX_SCHEMA_TYPES:
        raise BadRequest(f"schema_types must be an array of at most {MAX_SCHEMA_TYPES} strings",
                         code="invalid_request")
    types = {clean_text(t, "schema_types[]", code="invalid_request") for t in types}
    schema_type = query_text("schemaType", code="invalid_request")
    if schema_type:
        types.add(schema_type)
    limit = _limit()

    session = db.session()
    record_types = sorted(types) or None
    # the token's user is proven in the page's own statement; when not, the full check, and a read as it says
    counter, rows, proven = pull_page(session, current_principal().tenant_id, since=since_version, limit=limit + 1,
                                      record_types=record_types, proof=claim_proof())
    tenant = prove_claim(proven).tenant_id
    if not proven:
        counter, rows, _ = pull_page(session, tenant, since=since_version, limit=limit + 1, record_types=record_types)
    seen(dialect="synkronus", tenant_id=tenant, client_id=client_id, activity="pull", app_version=_app_version())
    has_more = len(rows) > limit
    rows = rows[:limit]
    change_cutoff = rows[-1].version if rows else since_version
    current = max(counter, change_cutoff)
    if not has_more:
        advance_cursor(session, tenant, client_id, current)
        db.commit()
    seen(dialect="synkronus", tenant_id=tenant, client_id=client_id, activity="pull", app_version=_app_version(),
         pulled_version=change_cutoff if has_more else current)
    parts = [b'{"current_version":', str(current).encode(), b',"records":[',
             ",".join(row.json for row in rows).encode(),
             b'],"change_cutoff":', str(change_cutoff).encode(), b',"has_more":',
             b"true" if has_more else b"false", b',"sync_format_version":"1.0"}']
    return _json_response(b"".join(parts))
