"""Synkronus push pipeline: validate each observation (a bad one is a failed record, never a failed
batch), apply the rest through the engine, keep warnings, and write the exact answer as the receipt."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid

import orjson

from models import jobs, receipts
from models.blobs import save_bytes
from models.db import lazy_commit
from models.engine import MAX_KEY_LENGTH, MAX_TYPE_LENGTH, Incoming
from models.synkronus import NAMESPACE, PUSH
from models.synkronus.store import safe_current_version
from workers.api import enqueue_after_commit, keeps_inline, open_payload
from workers.apply import Rejected, run_apply
from workers.errors import JobFailed
from workers.index import submit_index
from workers.jsonsafe import MAX_DEPTH, JsonError, as_text, find_bad_text, find_unstorable, loads_checked

MAX_STRING = 256 * 1024
MAX_ID = MAX_KEY_LENGTH      # bytes of UTF-8: the observation id is the record's key
MAX_DATA_BYTES = 1024 * 1024
FAILED_IN_ANSWER = 100       # failed records (and warnings) given in full in a push answer; all at /jobs/<id>/errors
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?$")


def parse_time(value) -> dt.datetime | None:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("not an RFC3339 date-time")
    parsed = dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _geo_problem(geo) -> str | None:
    if geo is None:
        return None
    if not isinstance(geo, dict):
        return "geolocation must be an object"
    ranges = {"latitude": (-90, 90), "longitude": (-180, 180), "accuracy": (0, None), "altitude": (None, None),
              "altitude_accuracy": (0, None)}
    for name in ("latitude", "longitude"):
        if name not in geo:
            return f"geolocation.{name} is required"
    for name, (low, high) in ranges.items():
        value = geo.get(name)
        if value is None and name in ("altitude", "altitude_accuracy", "accuracy"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"geolocation.{name} must be a number"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"geolocation.{name} is out of range"
    return None


def _quick_unstorable(value) -> tuple[str, str, str] | None:
    """find_unstorable for a value from the strict parser, looked at through its serialised text first:
    only a NUL escape, a long text or many brackets make the full walk worth it."""
    try:
        serialised = orjson.dumps(value)
    except orjson.JSONEncodeError:  # nested past what the writer takes
        return find_unstorable(value, max_string=MAX_STRING) or ("too_deep", f"nested deeper than {MAX_DEPTH} levels", "")
    if (b"\\u0000" in serialised or len(serialised) > MAX_STRING
            or serialised.count(b"{") + serialised.count(b"[") > MAX_DEPTH):
        return find_unstorable(value, max_string=MAX_STRING)
    return None


def validate(position: int, record, *, clean: bool = False) -> tuple[Incoming | Rejected, dict | None]:
    """One observation → (Incoming, optional warning) or (Rejected, None). `clean`: the document came
    through the strict parser, so no NaN/Infinity can hide in it and only text needs checking."""
    def reject(code, message, path=None):
        rid = record.get("observation_id") if isinstance(record, dict) else None
        return Rejected(position=position, record_id=rid if isinstance(rid, str) else None, code=code,
                        message=message, path=path, record=_as_text(record)), None

    if not isinstance(record, dict):
        return reject("invalid_record", "record must be an object")
    obs_id = record.get("observation_id")
    if not isinstance(obs_id, str) or not obs_id.strip():
        return reject("missing_observation_id", "observation_id is required", "observation_id")
    bad = find_bad_text(obs_id, max_bytes=MAX_ID)
    if bad is not None:
        code, message = bad
        return reject("invalid_observation_id" if code == "text_too_long" else code,
                      f"observation_id {message}", "observation_id")
    form_type = record.get("form_type")
    if form_type is not None and not isinstance(form_type, str):
        return reject("invalid_type", "form_type must be a string", "form_type")
    if form_type:
        bad = find_bad_text(form_type, max_bytes=MAX_TYPE_LENGTH)
        if bad is not None:
            code, message = bad
            return reject("invalid_form_type" if code == "text_too_long" else code, f"form_type {message}",
                          "form_type")
    data = record.get("data")
    if not isinstance(data, dict):
        return reject("invalid_type", "data must be an object", "data")
    data_text = None
    if clean:
        # The strict parser let no NaN, big number or lone surrogate through; what is left to find is a
        # NUL, an oversize string or deep nesting, and the serialised text says cheaply whether to look.
        others = {k: v for k, v in record.items() if k != "data"}
        problem = _quick_unstorable(others)
        if problem is None:
            try:
                data_text = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
            except orjson.JSONEncodeError:  # nested past what the writer takes (255 levels)
                data_text = None
            if data_text is None:
                problem = find_unstorable(data, max_string=MAX_STRING, path="data") or (
                    "too_deep", f"nested deeper than {MAX_DEPTH} levels", "data")
            elif len(data_text) > MAX_DATA_BYTES:
                return reject("record_too_large", f"data is larger than {MAX_DATA_BYTES} bytes", "data")
            elif ("\\u0000" in data_text or len(data_text) > MAX_STRING
                  or data_text.count("{") + data_text.count("[") > MAX_DEPTH):
                problem = find_unstorable(data, max_string=MAX_STRING, path="data")
    else:
        problem = find_unstorable(record, max_string=MAX_STRING)
    if problem is not None:
        code, message, path = problem
        return reject(code, f"{path or 'record'}: {message}", path)
    form_version = record.get("form_version", "")
    if form_version is None:
        form_version = ""
    if not isinstance(form_version, (str, int, float)) or isinstance(form_version, bool):
        return reject("invalid_type", "form_version must be a string", "form_version")
    deleted = record.get("deleted", False)
    if not isinstance(deleted, bool):
        return reject("invalid_type", "deleted must be a boolean", "deleted")
    created_at = None
    for field in ("created_at", "updated_at", "synced_at"):
        value = record.get(field)
        if value is None:
            continue
        try:
            parse_time(value)
        except ValueError:
            return reject("invalid_timestamp", f"{field} is not an RFC3339 date-time", field)
        if field == "created_at":
            created_at = value  # validated; PostgreSQL reads RFC3339 as it is
    geo = record.get("geolocation")
    geo_problem = _geo_problem(geo)
    if geo_problem:
        return reject("invalid_geolocation", geo_problem, "geolocation")
    meta = {}
    if record.get("synced_at") is not None:
        meta["synced_at"] = record["synced_at"]
    incoming = Incoming(position=position, key=obs_id, record_type=form_type or "", data=data, deleted=deleted,
                        schema_version=str(form_version), geolocation=geo, meta=meta, created_at=created_at,
                        data_text=data_text)
    warning = None
    if not form_type:
        warning = {"position": position, "record_id": obs_id, "code": "MISSING_FORM_TYPE",
                   "message": "form_type is empty; the record was stored without one", "severity": "warning"}
    return incoming, warning


def _as_text(record) -> str:
    return as_text(record, jobs.RECORD_TEXT_CAP)


def push_answer(session, job_id, tenant_id: str, client_id: str, success_count: int, *,
                may_have_errors: bool = True) -> dict:
    """The push's answer. At most FAILED_IN_ANSWER failed records and warnings are given in full; when
    there are more, `failed_count` / `warnings_count` say how many and `errors_url` lists them all.
    `may_have_errors=False`: the caller knows the job recorded no error or warning (nothing to look up)."""
    answer: dict = {"current_version": safe_current_version(session, tenant_id, client_id),
                    "success_count": success_count}
    errors = warnings = []
    if may_have_errors:
        errors = jobs.errors_of(session, job_id, severity="error", limit=FAILED_IN_ANSWER)
        warnings = jobs.errors_of(session, job_id, severity="warning", limit=FAILED_IN_ANSWER)
    if errors:
        answer["failed_records"] = [{"index": r.position, "error": r.message, "record": _parse_or_text(r.record)}
                                    for r in errors]
    if warnings:
        answer["warnings"] = [{"id": r.record_id or "", "code": r.code, "message": r.message} for r in warnings]
    truncated = False
    for rows, name, severity in ((errors, "failed_count", "error"), (warnings, "warnings_count", "warning")):
        if len(rows) == FAILED_IN_ANSWER:
            total = jobs.count_errors(session, job_id, severity=severity)
            if total > FAILED_IN_ANSWER:
                answer[name] = total
                truncated = True
    if truncated:
        answer["errors_url"] = f"/jobs/{job_id}/errors"
    return answer


def _parse_or_text(value):
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


class TransmissionConflict(Exception):
    """The transmission id was already used by this client with another payload."""


def accept_push(session, celery_app, blobs, settings, *, tenant_id: str, actor: str, client_id: str,
                transmission_id: str, raw: bytes, total: int):
    """Make a push durable: a receipt claimed for (client, transmission) and a push job carrying the
    payload, committed together in one statement (the job's message goes out after the commit). A payload
    up to INLINE_PAYLOAD_BYTES lives in the job row; a larger one is written to the blob store first. A
    replay of the same payload is a no-op. Returns the new job's id, or None for a replay; raises
    TransmissionConflict."""
    payload_hash = hashlib.sha256(raw).hexdigest()
    inline = keeps_inline(raw)
    sha = None if inline else save_bytes(session, blobs, raw, "application/json")[0]
    job_id = uuid.uuid4()
    created, held = receipts.claim_with_job(
        session, tenant_id=tenant_id, client_id=client_id, transmission_id=transmission_id,
        payload_hash=payload_hash, retention_days=settings.receipt_retention_days, job_id=job_id, kind=PUSH,
        idempotency_key=f"{client_id}\x1f{transmission_id}\x1f{payload_hash}",
        params={"client_id": client_id, "transmission_id": transmission_id}, cursor_namespace=NAMESPACE,
        created_by=actor, max_attempts=settings.job_max_attempts, progress_total=total,
        payload=raw if inline else None, blob_sha256=sha)
    if created is not None:
        enqueue_after_commit(session, celery_app, created, PUSH.queue)
        # The client is told nothing until the job's apply commits durably (which flushes this with it),
        # or until a 202 says the push is stored (the view makes it durable first): no flush wait here.
        lazy_commit(session)
        session.commit()  # the message goes out now
        return created
    session.rollback()  # a replay, or another request claimed it first
    if held is None:
        existing = receipts.get(session, tenant_id, client_id, transmission_id)
        held = None if existing is None else existing.payload_hash
    if held != payload_hash:
        raise TransmissionConflict(transmission_id)
    return None


def run_push(ctx):
    params = ctx.job.params
    client_id, transmission_id = params["client_id"], params["transmission_id"]
    with open_payload(ctx) as fh:
        raw = fh.read()
    try:
        body, clean = loads_checked(raw)
    except JsonError as exc:
        raise JobFailed("malformed_payload", exc.message) from None
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise JobFailed("malformed_payload", "records must be an array")
    warnings: dict[int, dict] = {}

    def items():
        for position, record in enumerate(records):
            item, warning = validate(position, record, clean=clean)
            if warning is not None:
                warnings[position] = warning
            yield item

    noted = {"any": False}

    def on_chunk(session, applied, result, rejected):
        chunk_warnings = [warnings.pop(rec.position) for rec in applied if rec.position in warnings]
        noted["any"] = noted["any"] or bool(chunk_warnings) or bool(result.conflicts) or bool(rejected)
        for position, key, server_version in result.conflicts:
            chunk_warnings.append({
                "position": position, "record_id": key, "code": "CONFLICT", "severity": "warning",
                "message": f"the server's copy changed (version {server_version}) after this client last pulled;"
                           " this write won and the server's copy was kept for review"})
        jobs.record_errors(session, ctx.job.id, chunk_warnings)

    answered = {}

    def on_end(session, counts):
        # in the last chunk's transaction: the answer, the index request and the job's end commit with it
        success = counts["accepted"] + counts["duplicate"]
        # a first attempt that noted nothing has nothing to look up; a resumed one may have noted earlier
        fresh = ctx.job.attempts <= 1 and ctx.job.checkpoint == 0
        answer = push_answer(session, ctx.job.id, ctx.job.tenant_id, client_id, success,
                             may_have_errors=noted["any"] or counts["rejected"] > 0 or not fresh)
        receipts.store_answer(session, ctx.job.tenant_id, client_id, transmission_id, 200, orjson.dumps(answer))
        if counts["accepted"]:
            submit_index(session, ctx, namespace=NAMESPACE)
        ctx.finish(session, result=answer)
        answered["answer"] = answer

    run_apply(ctx, items(), namespace=NAMESPACE, origin=client_id, transmission=transmission_id,
              client_since=params.get("client_since"), total=len(records), on_chunk=on_chunk, on_end=on_end)
    return answered["answer"]
