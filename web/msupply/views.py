"""The mSupply queue and login endpoints, served the same under /sync/v1/, /sync/v2/ and /sync/v3/:
queued_records (count, pull, push), acknowledged_records, initial_dump, site and user."""
from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, g, request

from models.engine import get_record
from models.msupply import NAMESPACE, SERVER_SITE_ID
from models.msupply import store as msupply
from web import context, db, devices
from web.errors import BadRequest
from web.inputs import query_text
from web.jsonbody import read_json
from web.msupply import wire
from web.msupply.auth import authenticate_site, authenticate_user, check_route, claimed_site, stale_claim
from web.msupply.envelope import json_response
from workers.api import wait_for_end
from workers.msupply.jobs import start_initial_dump, submit_push

bp = Blueprint("msupply_sync", __name__, url_prefix="/sync/v<int(min=1, max=3):version>")

SERVER_VERSION = 409  # major*100 + minor, the mSupply server version this server answers as


def _v1map():
    return current_app.extensions["msupply_v1map"]


def _seen(site: msupply.Site, activity: str, **counts) -> None:
    # a device is its site (one satellite server)
    devices.seen(dialect="msupply", tenant_id=site.tenant_id, client_id=site.name, activity=activity,
                 app_version=devices.header("app-version", "msupply-app-version"), **counts)


def _site(version: int, activity: str | None = None) -> msupply.Site:
    return _site_of(authenticate_site(version), activity)


def _claimed(version: int, activity: str | None = None):
    """`_site` for the pull loop's page and ack: (site, the proof its statement checks), the site row
    possibly remembered (web.msupply.auth.claimed_site); v1 reads it afresh."""
    if version == 1:
        return _site(version, activity), None
    site, proof = claimed_site(version)
    return _site_of(site, activity), proof


def _afresh(site: msupply.Site, version: int, activity: str | None = None) -> msupply.Site:
    """The remembered site row did not prove current: authenticate afresh (401 / 409 / 429 as usual)."""
    g.pop("fieldsync_device", None)  # noted for the claim; noted again once authenticated
    return _site_of(stale_claim(site, version), activity)


def _site_of(site: msupply.Site, activity: str | None) -> msupply.Site:
    if activity is not None:
        _seen(site, activity)
    check_route(site)
    return site


@bp.get("/queued_records/count")
@db.autocommit
def count(version: int):
    site = _site(version)
    return json_response({"NumRecords": msupply.queue_count(db.session(), site.tenant_id, site.site_id)})


@bp.get("/queued_records")
@db.autocommit
def pull(version: int):
    site, proof = _claimed(version, "pull")
    limit = wire.parse_limit(request.args.get("limit"))
    sync_id = query_text("sync_id", wire.MAX_SYNC_ID)
    limit = 1 if sync_id else limit
    mapping = _v1map()
    if version == 1:  # v1 renames fields by number: rendered here
        rows = msupply.queue_head(db.session(), site.tenant_id, site.site_id, limit=limit, sync_id=sync_id)
        return Response(wire.pulled_page(rows, version, mapping), mimetype="application/json")
    page = msupply.queue_page_json(db.session(), site.tenant_id, site.site_id, limit=limit, sync_id=sync_id,
                                   key_fields=mapping.key_fields(), proof=proof)
    if page is None:  # the remembered site row is stale
        site = _afresh(site, version, "pull")
        page = msupply.queue_page_json(db.session(), site.tenant_id, site.site_id, limit=limit, sync_id=sync_id,
                                       key_fields=mapping.key_fields())
    return Response(page, mimetype="application/json")


@bp.post("/acknowledged_records")
@db.autocommit
def acknowledge(version: int):
    site, proof = _claimed(version)
    ids = wire.ack_ids(read_json())
    session = db.session()
    done = msupply.acknowledge(session, site.tenant_id, site.site_id, ids, proof=proof)
    if done is None:  # the remembered site row is stale: nothing was removed
        site = _afresh(site, version)
        done = msupply.acknowledge(session, site.tenant_id, site.site_id, ids)
    removed, received = done
    _seen(site, "ack", pulled_version=received)
    db.commit()
    return json_response({"acknowledged": removed})


def push_wait_seconds() -> float:
    """How long a push waits for its job before answering (MSUPPLY_PUSH_WAIT_SECONDS; default 0).
    The mobile app deletes its records once a push is answered with JSON that has no `error`, and the
    answer is always `{}`: what it must mean is that the batch is durably accepted (the job row with
    its payload committed, keyed by the SyncIDs so a resend is the same job), which is true at once.
    Records that fail validation are reported on the job (GET /jobs/<id>/errors), never in the answer,
    so waiting tells the client nothing; a deployment may still set a bounded wait (the answer then
    comes after the apply, or after the wait)."""
    raw = context.settings().option("msupply", "push_wait_seconds")
    try:
        return max(0.0, float(raw)) if raw not in (None, "") else 0.0
    except ValueError:
        return 0.0


@bp.post("/queued_records")
def push(version: int):
    """Store the batch durably as one job (keyed by its SyncIDs so a resend is the same job) and answer
    {}: stored records are never reported as an error. The worker applies the site's push jobs in the
    order they were accepted (workers/msupply/jobs.py); see push_wait_seconds for an optional wait."""
    site = _site(version, "push")
    records = wire.push_records(read_json(), version, _v1map(),
                                max_records=context.settings().max_records_per_push)
    devices.seen(dialect="msupply", tenant_id=site.tenant_id, client_id=site.name, activity="push",
                 records=len(records), app_version=devices.header("app-version", "msupply-app-version"))
    if not records:
        return json_response({})
    session = db.session()
    job_id = submit_push(session, context.celery(), context.blobs(), site, wire.dump_payload(records),
                         count=len(records), sync_ids=wire.sync_ids(records), version=version)
    wait = push_wait_seconds()
    if wait > 0:
        wait_for_end(session, context.redis(), job_id, wait)
    return json_response({})


@bp.get("/initial_dump")
def initial_dump(version: int):
    """Regenerate the site's queue: cleared now (so `count` starts from zero), refilled by a job.
    A dump already queued or running for the site is left to finish; no second one starts."""
    site = _site(version)
    start_initial_dump(db.session(), context.celery(), site, full=request.args.get("type") == "full")
    return json_response({})


@bp.get("/site")
def site_info(version: int):
    site = authenticate_site(version)
    asked = request.args.get("site_name")
    if asked is not None and asked != site.name:
        raise BadRequest("site_name does not match the authenticated site")
    supplying_name = site.supplying_store_name_id
    if not supplying_name and site.supplying_store_id:
        store = get_record(db.session(), tenant_id=site.tenant_id, namespace=NAMESPACE,
                           key=f"store:{site.supplying_store_id}")
        if store is not None and store.data_text:
            supplying_name = (orjson.loads(store.data_text) or {}).get("name_ID") or ""
    return json_response({"SiteID": site.site_id, "ServerID": SERVER_SITE_ID, "StoreID": site.store_id,
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
