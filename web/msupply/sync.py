"""The mSupply queue and login endpoints, served the same under /sync/v1/, /sync/v2/ and /sync/v3/:
queued_records (count, pull, push), acknowledged_records, initial_dump, site and user."""
from __future__ import annotations

import hashlib
import time
import uuid

import orjson
from flask import Blueprint, Response, current_app, request
from sqlalchemy.dialects.postgresql import insert as pg_insert

from models import msupply
from models.engine import current_version, get_record
from models.tables import TERMINAL_STATUSES, Blob, Job
from web import db
from web.errors import BadRequest
from web.jsonbody import read_json
from web.msupply import wire
from web.msupply.auth import authenticate_site, authenticate_user, check_route
from workers import doorbell
from workers.api import submit_job

bp = Blueprint("msupply_sync", __name__, url_prefix="/sync/v<int(min=1, max=3):version>")

SERVER_VERSION = 409  # major*100 + minor, the mSupply server version this server answers as


def json_response(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


def _site(version: int) -> msupply.Site:
    site = authenticate_site(version)
    check_route(site)
    return site


@bp.get("/queued_records/count")
def count(version: int):
    site = _site(version)
    return json_response({"NumRecords": msupply.queue_count(db.session(), site.tenant_id, site.site_id)})


@bp.get("/queued_records")
def pull(version: int):
    site = _site(version)
    limit = wire.parse_limit(request.args.get("limit"))
    sync_id = request.args.get("sync_id")
    rows = msupply.queue_head(db.session(), site.tenant_id, site.site_id, limit=1 if sync_id else limit,
                              sync_id=sync_id)
    return json_response([wire.pulled(row, version) for row in rows])


@bp.post("/acknowledged_records")
def acknowledge(version: int):
    site = _site(version)
    ids = wire.ack_ids(read_json())
    removed = msupply.acknowledge(db.session(), site.tenant_id, site.site_id, ids)
    db.commit()
    return json_response({"acknowledged": removed})


@bp.post("/queued_records")
def push(version: int):
    """Store the batch durably, run it through the engine as one job (keyed by its SyncIDs so a resend
    is the same job), wait a bounded time for it, and answer {} either way: stored records are never
    reported as an error."""
    site = _site(version)
    records = wire.push_records(read_json(), version)
    if not records:
        return json_response({})
    payload = wire.dump_payload(records)
    settings = current_app.config["FIELDSYNC_SETTINGS"]
    sha, size = current_app.extensions["fieldsync_blobs"].put_bytes(payload)
    session = db.session()
    session.execute(pg_insert(Blob).values(sha256=sha, size=size, media_type="application/json")
                    .on_conflict_do_nothing())
    sync_ids = "\n".join(str(r.get("SyncID") or f"#{i}") if isinstance(r, dict) else f"#{i}"
                         for i, r in enumerate(records))
    key = f"site:{site.site_id}:{hashlib.sha256(sync_ids.encode()).hexdigest()}"
    job, _ = submit_job(session, current_app.extensions["fieldsync_celery"], tenant_id=site.tenant_id,
                        kind="msupply.push", params={"site_id": site.site_id, "version": version,
                                                     "total": len(records), "transmission": key},
                        idempotency_key=key, payload_hash=sha, blob_sha256=sha,
                        created_by=msupply.site_origin(site.site_id), progress_total=len(records))
    job_id = job.id
    db.commit()
    _wait_for(job_id, settings.sync_wait_seconds)
    return json_response({})


def _wait_for(job_id, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    session = db.session()
    redis_client = current_app.extensions["fieldsync_redis"]()
    while True:
        session.expire_all()
        job = session.get(Job, job_id)
        status = None if job is None else job.status
        session.rollback()  # no snapshot held open while waiting
        remaining = deadline - time.monotonic()
        if status is None or status in TERMINAL_STATUSES or remaining <= 0:
            return
        doorbell.wait(redis_client, job_id, min(remaining, 2.0))


@bp.get("/initial_dump")
def initial_dump(version: int):
    """Regenerate the site's queue: cleared now (so `count` starts from zero), refilled by a job.
    A dump already queued or running for the site is left to finish; no second one starts."""
    site = _site(version)
    session = db.session()
    msupply.lock_site(session, site.tenant_id, site.site_id)
    if msupply.open_dump_job(session, site.tenant_id, site.site_id) is None:
        msupply.clear_queue(session, site.tenant_id, site.site_id)
        full = request.args.get("type") == "full"
        submit_job(session, current_app.extensions["fieldsync_celery"], tenant_id=site.tenant_id,
                   kind="msupply.initial_dump",
                   params={"site_id": site.site_id, "full": full, "cleared": True,
                           "upto": current_version(session, site.tenant_id)},
                   idempotency_key=f"site:{site.site_id}:dump:{uuid.uuid4().hex}",
                   created_by=msupply.site_origin(site.site_id))
    db.commit()
    return json_response({})


@bp.get("/site")
def site_info(version: int):
    site = authenticate_site(version)
    asked = request.args.get("site_name")
    if asked is not None and asked != site.name:
        raise BadRequest("site_name does not match the authenticated site")
    supplying_name = site.supplying_store_name_id
    if not supplying_name and site.supplying_store_id:
        store = get_record(db.session(), tenant_id=site.tenant_id, namespace=msupply.NAMESPACE,
                           key=f"store:{site.supplying_store_id}")
        if store is not None and store.data_text:
            supplying_name = (orjson.loads(store.data_text) or {}).get("name_ID") or ""
    return json_response({"SiteID": site.site_id, "ServerID": msupply.SERVER_SITE_ID, "StoreID": site.store_id,
                          "NameID": site.name_id, "SupplyingStoreID": site.supplying_store_id,
                          "SupplyingStoreNameID": supplying_name, "ServerVersion": SERVER_VERSION})


@bp.get("/user")
def user_info(version: int):
    user = authenticate_user()
    store = request.args.get("store")
    if not store:
        raise BadRequest("store is required")
    sites = [s for s in msupply.list_sites(db.session(), user.tenant_id) if s.store_id == store]
    if not sites:
        raise BadRequest("This user does not have access to that store")
    return json_response({"UserID": user.id.hex, "isAdmin": user.role == "admin"})
