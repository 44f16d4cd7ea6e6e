"""mSupply pipelines.

`msupply.push`: a satellite's pushed batch (already normalised to v3 shape at the edge and stored as a
blob) goes through the engine; SyncIDs the site pushed before are skipped, merges repoint references.
`msupply.initial_dump`: regenerate one site's outgoing queue with INSERT … SELECT batches (exports queue).
The fan-out of every accepted change to the site queues is the models layer's after-apply hook
(models/msupply/__init__.py), run inside each apply transaction."""
from __future__ import annotations

import hashlib
import time
import uuid
from itertools import islice

import ijson

from models.blobs import save_bytes
from models.engine import MAX_KEY_LENGTH, MAX_TYPE_LENGTH, Incoming, apply_chunk, current_version, stage_text
from models.msupply import INITIAL_DUMP, NAMESPACE, PUSH
from models.msupply import store as msupply
from workers.api import keeps_inline, open_payload, submit_job
from workers.apply import Rejected, run_apply
from workers import doorbell
from workers.errors import JobFailed, TransientError
from workers.jsonsafe import JsonError, as_text, find_bad_text, find_unstorable, storable_json
from workers.jsonsafe import has_lone_surrogate_escape
from workers.jsonsafe import loads as safe_loads

SYNC_TYPES = ("I", "U", "D", "M")
DUMP_BATCH = 50_000
MAX_STRING = 256 * 1024
# How long a push job waits for the site's earlier push jobs before it is released for a later try:
# past a dead worker's lease (60 s by default), so a restarted job of an earlier push can run first.
ORDER_WAIT_SECONDS = 90.0


def routing(settings) -> msupply.Routing:
    """The deployment's routing (MSUPPLY_ROUTING_FILE, or the shipped defaults)."""
    return msupply.routing_for(settings.option("msupply", "routing_file"))


# --- push ----------------------------------------------------------------------------------------

def submit_push(session, celery_app, blobs, site, payload: bytes, *, count: int, sync_ids: list[str],
                version: int):
    """Store a pushed batch (already in v3 shape) and its push job, and commit. The job is keyed by the
    batch's SyncIDs, so a resent batch is the same job. Returns the job id."""
    inline = keeps_inline(payload)
    sha = hashlib.sha256(payload).hexdigest() if inline else save_bytes(session, blobs, payload, "application/json")[0]
    identity = "\n".join(sync_ids).encode()
    key = f"site:{site.site_id}:{hashlib.sha256(identity).hexdigest()}"
    job, _ = submit_job(session, celery_app, tenant_id=site.tenant_id, kind=PUSH,
                        params={"site_id": site.site_id, "version": version, "total": count, "transmission": key},
                        idempotency_key=key, payload_hash=sha, blob_sha256=None if inline else sha,
                        payload=payload if inline else None,
                        created_by=msupply.site_origin(site.site_id), progress_total=count)
    session.commit()
    return job.id


def parse_record(position: int, raw) -> Incoming | Rejected:
    """One pushed v3-shaped record to an engine record, or the reason it cannot be stored."""
    def reject(code, message, path=None):
        record_id = raw.get("RecordID") if isinstance(raw, dict) else None
        return Rejected(position, record_id if isinstance(record_id, str) else None, code, message, path,
                        as_text(raw))

    if not isinstance(raw, dict):
        return reject("not_an_object", "a sync record must be a JSON object")
    # Every value PostgreSQL cannot store (NUL, lone surrogate, a number beyond a double, deep nesting)
    # anywhere in the record, before any of it is written. The walk runs only when the JSON text of Data
    # and of the rest cannot prove them clean; Data's text is then the one stored.
    data_key = "Data" if "Data" in raw else "data"
    data = raw.get(data_key)
    data_text = storable_json(data, max_string=MAX_STRING) if isinstance(data, dict) else None
    rest = raw if data_text is None else {k: v for k, v in raw.items() if k != data_key}
    clean = storable_json(rest, max_string=MAX_STRING) is not None
    problem = None if clean else find_unstorable(raw, max_string=MAX_STRING)
    if problem is not None:
        code, message, path = problem
        return reject(code, f"{path or 'record'}: {message}", path)
    if raw.get("_v1_unknown_table") is not None:
        return reject("unknown_table", "unknown v1 table number", "TableNumber")
    sync_type = raw.get("SyncType")
    if sync_type not in SYNC_TYPES:
        return reject("invalid_sync_type", "SyncType must be one of I, U, D, M", "SyncType")
    sync_id = raw.get("SyncID")
    if isinstance(sync_id, str) and find_bad_text(sync_id, max_bytes=MAX_KEY_LENGTH) is not None:
        return reject("invalid_sync_id", f"SyncID is longer than {MAX_KEY_LENGTH} bytes", "SyncID")
    record_type, record_id = raw.get("RecordType"), raw.get("RecordID")
    if not isinstance(record_type, str) or not record_type:
        return reject("missing_record_type", "RecordType is required", "RecordType")
    if find_bad_text(record_type, max_bytes=MAX_TYPE_LENGTH) is not None:
        return reject("record_type_too_long", f"RecordType is longer than {MAX_TYPE_LENGTH} bytes", "RecordType")
    store_id = raw.get("StoreID") if isinstance(raw.get("StoreID"), str) else ""
    meta = {"store_id": store_id}
    if sync_type == "M":
        keep, drop = raw.get("mergeIDtokeep"), raw.get("mergeIDtodelete")
        if not (isinstance(keep, str) and keep and isinstance(drop, str) and drop) or keep == drop:
            return reject("invalid_merge", "a merge needs two different ids mergeIDtokeep and mergeIDtodelete",
                          "mergeIDtodelete")
        meta.update(sync_type="M", merge_keep=keep, merge_delete=drop)
        record_id = drop
    if not isinstance(record_id, str) or not record_id:
        return reject("missing_record_id", "RecordID is required", "RecordID")
    key = f"{record_type}:{record_id}"
    if find_bad_text(key, max_bytes=MAX_KEY_LENGTH) is not None:
        return reject("key_too_long", f"RecordType and RecordID together exceed {MAX_KEY_LENGTH} bytes")
    if sync_type in ("D", "M"):
        return Incoming(position=position, key=key, record_type=record_type, data=None, deleted=True, meta=meta)
    if not isinstance(data, dict):
        return reject("missing_data", "Data must be an object for an insert or update", "Data")
    return Incoming(position=position, key=key, record_type=record_type, data=data, meta=meta,
                    data_text=data_text)


def _batched(iterable, size):
    it = iter(iterable)
    while batch := list(islice(it, size)):
        yield batch


def _payload(ctx):
    """(position, record) for each record of the stored batch. It is streamed; a batch the streaming
    parser cannot read exactly (a number beyond 64 bits, nesting past its limit, a surrogate escape) is
    read whole by the safe parser from where the stream stopped, so such a value rejects only its record."""
    resume = 0
    with open_payload(ctx) as stream:
        streamable = not has_lone_surrogate_escape(stream)
    if streamable:
        with open_payload(ctx) as stream:
            try:
                for position, raw in enumerate(ijson.items(stream, "item", use_float=True)):
                    resume = position + 1
                    yield position, raw
                return
            except (ijson.JSONError, RecursionError, ValueError):
                pass  # read again below, safely
    with open_payload(ctx) as stream:
        try:
            body = safe_loads(stream.read())
        except JsonError as exc:
            raise JobFailed("malformed_payload", f"the stored payload cannot be read: {exc.message}") from None
    if not isinstance(body, list):
        raise JobFailed("malformed_payload", "the stored payload is not a JSON array")
    for position in range(resume, len(body)):
        yield position, body[position]


def _parsed(ctx) -> list[tuple[int, object, Incoming | Rejected]]:
    """(position, record, parsed) for each record the job has still to apply (past its checkpoint).
    Parsing, validation and staging need nothing from the database, so they run before the job waits its
    turn."""
    parsed = [(position, raw, parse_record(position, raw)) for position, raw in _payload(ctx)
              if position >= ctx.job.checkpoint]
    # Each record's staging row (its COPY text and content hash) is built here too, so the apply, which
    # waits for the site's earlier pushes, only joins the rows.
    for _, _, item in parsed:
        if isinstance(item, Incoming):
            item.staged = stage_text(item)
    return parsed


def _push_items(parsed: list, sync_by_position: dict):
    """The parsed records in order, noting each valid record's SyncID by its position."""
    for position, raw, item in parsed:
        if isinstance(item, Incoming) and isinstance(raw.get("SyncID"), str):
            sync_by_position[position] = raw["SyncID"]
        yield item


def _after_earlier_pushes(ctx, site_id: int) -> None:
    """Wait until every push job the site had accepted before this one has applied its records, so a
    site's pushes are applied in the order it sent them (its answers do not wait for the apply, so
    several of its jobs may be queued at once). Waits on the earlier job's doorbell, renewing this job's
    lease; an earlier job still unapplied after ORDER_WAIT_SECONDS (its worker died and its lease has yet
    to run out, or this job was delivered first to the only free worker) releases this one for a later
    try."""
    deadline = time.monotonic() + ORDER_WAIT_SECONDS
    tick = ctx.heartbeat()
    redis_client = ctx.runtime.redis_client()
    while True:
        with ctx.session() as session:
            earlier = msupply.earlier_unapplied_push(session, ctx.job.tenant_id, site_id, ctx.job.id)
        if earlier is None:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TransientError("an earlier push of this site has not been applied yet")
        started = time.monotonic()
        if (not doorbell.wait(redis_client, earlier, min(0.5, remaining))  # rung when that job ends
                and time.monotonic() - started < 0.1):
            time.sleep(min(0.25, remaining))  # Redis did not answer: poll the database, slowly
        tick()


def _repoint_merges(session, ctx, records: list[Incoming], origin: str) -> None:
    """A merge makes every record that names the removed id name the kept one instead. The changed
    records go through the engine (versions, audit, fan-out) like any other change."""
    for rec in records:
        if rec.meta.get("sync_type") != "M":
            continue
        rows = msupply.records_naming(session, ctx.job.tenant_id, rec.meta["merge_delete"], rec.meta["merge_keep"])
        for batch in _batched(rows, ctx.settings.chunk_size):
            apply_chunk(session, tenant_id=ctx.job.tenant_id, namespace=NAMESPACE, actor=ctx.job.created_by,
                        origin=origin, job_id=ctx.job.id, hooks=ctx.hooks(NAMESPACE), records=[
                            Incoming(position=rec.position, key=r.record_key, record_type=r.record_type,
                                     data=r.data, meta=r.meta) for r in batch])


def push(ctx) -> dict:
    site_id = int(ctx.job.params["site_id"])
    origin = msupply.site_origin(site_id)
    skipped: list[int] = []
    sync_by_position: dict[int, str] = {}

    def before_apply(session, records):
        # In the chunk's transaction, before the counter lock: the SyncIDs are remembered (they commit
        # with the apply), and records whose SyncID an earlier push job of the site applied are dropped.
        ids = [sync_by_position[r.position] for r in records if r.position in sync_by_position]
        seen = msupply.claim_sync_ids(session, ctx.job.tenant_id, site_id, ids, ctx.job.id)
        if seen:
            kept = []
            for r in records:
                if sync_by_position.get(r.position) in seen:
                    skipped.append(r.position)
                else:
                    kept.append(r)
            records[:] = kept
        for r in records:
            sync_by_position.pop(r.position, None)

    def on_chunk(session, records, result, rejected):
        _repoint_merges(session, ctx, records, origin)

    result = {}

    def on_end(session, counts):
        # the job ends in its last chunk's transaction: one commit for the apply and the end
        result.update(counts=counts, already_pushed=len(skipped))
        ctx.finish(session, result=result)

    parsed = _parsed(ctx)
    _after_earlier_pushes(ctx, site_id)
    items = _push_items(parsed, sync_by_position)
    run_apply(ctx, items, namespace=NAMESPACE, origin=origin, transmission=ctx.job.params.get("transmission"),
              total=ctx.job.params.get("total"), on_chunk=on_chunk, before_apply=before_apply, on_end=on_end)
    # its last chunk ended the job (on_end): the runner's doorbell for it wakes the site's next push job
    return result


# --- initial dump --------------------------------------------------------------------------------

def start_initial_dump(session, celery_app, site, *, full: bool) -> None:
    """Clear the site's queue now (so `count` starts from zero) and start the job that refills it, up
    to the tenant's current version; a dump already queued or running for the site is left to finish.
    Commits."""
    msupply.lock_site(session, site.tenant_id, site.site_id)
    if msupply.open_dump_job(session, site.tenant_id, site.site_id) is None:
        msupply.clear_queue(session, site.tenant_id, site.site_id)
        submit_job(session, celery_app, tenant_id=site.tenant_id, kind=INITIAL_DUMP,
                   params={"site_id": site.site_id, "full": full, "cleared": True,
                           "upto": current_version(session, site.tenant_id)},
                   idempotency_key=f"site:{site.site_id}:dump:{uuid.uuid4().hex}",
                   created_by=msupply.site_origin(site.site_id))
    session.commit()


def initial_dump(ctx) -> dict:
    params = ctx.job.params
    site_id, full, upto = int(params["site_id"]), bool(params.get("full")), int(params["upto"])
    batch = int(params.get("batch") or DUMP_BATCH)
    after = ctx.job.checkpoint
    queued = int(ctx.counts.get("queued", 0))
    first = after == 0
    while True:
        with ctx.session() as session:
            if first and not params.get("cleared"):
                # Regenerate: the queue restarts from nothing (a redelivery before the first batch
                # committed clears again, which is the same result).
                msupply.clear_queue(session, ctx.job.tenant_id, site_id)
                first = False
            added, last = msupply.dump_batch(session, tenant_id=ctx.job.tenant_id, site_id=site_id, after=after,
                                             upto=upto, batch=batch, full=full,
                                             routing=routing(ctx.settings))
            if last is not None:
                queued += added
                after = last
            ctx.progress(session, done=after if last is not None else upto, total=upto, checkpoint=after,
                         counts={"queued": queued})
        if last is None:
            break
    with ctx.session() as session:
        msupply.refresh_stats(session)
    return {"queued": queued, "full": full, "site_id": site_id}
