"""mSupply wire shapes at the edge: the push body (v1 converted to v3 shape), the acknowledgement
body in its three accepted forms, and pulled records rendered for v1 or v2/v3."""
from __future__ import annotations

import math
from json.encoder import encode_basestring_ascii

import orjson

from web.errors import BadRequest, TooLarge
from web.inputs import INT64_MAX, clean_text, is_clean_text
from web.jsonbody import BadConstant
from web.msupply.v1map import V1Map

MAX_PULL = 1000     # cap on `limit` (the mobile app asks for 10 to 500)
MAX_SYNC_ID = 256   # longest SyncID a request may name (pull by sync_id, acknowledge)


def push_records(body, version: int, mapping: V1Map, *, max_records: int) -> list:
    if not isinstance(body, list):
        raise BadRequest("the body must be a JSON array of sync records")
    if len(body) > max_records:
        raise TooLarge(f"a push may carry at most {max_records} records; split the batch")
    if version == 1:
        body = [mapping.to_v3(_hashable_fields(record)) for record in body]
    return body


def _hashable_fields(record):
    """A v1 record whose field numbers can be looked up: a list or object given as a field number is
    kept as its text (an unknown field number, which the map keeps under its prefix)."""
    if not isinstance(record, dict) or not isinstance(record.get("fields"), list):
        return record
    fields = record["fields"]
    if all(not isinstance(f, (dict, list)) for f in fields):
        return record
    return {**record, "fields": [_encode(f) if isinstance(f, (dict, list)) else f for f in fields]}


def _identity_text(value, position: int) -> str:
    # A SyncID that is a list or object (of any depth) stands as its position; one with a lone
    # surrogate (which UTF-8 cannot encode) as its escaped form, so the batch keeps an identity and the
    # pipeline rejects its records one by one.
    if not value or isinstance(value, (dict, list)):
        return f"#{position}"
    text = value.text if isinstance(value, BadConstant) else str(value)
    return text if is_clean_text(text, len(text)) else text.encode("utf-8", "backslashreplace").decode("ascii")


def sync_ids(records: list) -> list[str]:
    """The batch's SyncIDs in order (a position stands in for a record without one): its identity."""
    return [_identity_text(r.get("SyncID"), i) if isinstance(r, dict) else f"#{i}" for i, r in enumerate(records)]


def _default(value):
    return value.text if isinstance(value, BadConstant) else str(value)


def dump_payload(records: list) -> bytes:
    """The batch as the push job reads it. A NaN or Infinity read from the body becomes its text, so the
    record is kept (as text) rather than failing the whole push. orjson refuses a lone surrogate (a
    `"\ud800"` escape in the body); such a batch is written with the standard encoder instead, which
    keeps the escape, so the job sees the same record and rejects that one record."""
    try:
        return orjson.dumps(records, default=_default)
    except orjson.JSONEncodeError:
        return _encode(records).encode("ascii")


def _encode(value) -> str:
    """JSON text of a parsed body, ASCII only, without recursion: what orjson refuses (a lone surrogate,
    an integer beyond 64 bits, nesting deeper than 255) is written here, so the one record holding it
    reaches the pipeline instead of failing the whole push. An integer beyond 64 bits becomes its text
    (as NaN does: the job's reader takes no larger integer); a non-finite float is null, as orjson
    writes it."""
    out: list[str] = []
    stack: list[tuple[bool, object]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            out.append(item)
        elif isinstance(item, str):
            out.append(encode_basestring_ascii(item))
        elif item is None:
            out.append("null")
        elif item is True or item is False:
            out.append("true" if item else "false")
        elif isinstance(item, int):
            text = int.__repr__(item)
            out.append(text if -INT64_MAX - 1 <= item <= INT64_MAX else '"' + text + '"')
        elif isinstance(item, float):
            out.append(float.__repr__(item) if math.isfinite(item) else "null")
        elif isinstance(item, dict):
            stack.append((True, "}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, child = entries[index]
                stack.append((False, child))
                stack.append((True, ("," if index else "") + encode_basestring_ascii(str(key)) + ":"))
            stack.append((True, "{"))
        elif isinstance(item, list):
            stack.append((True, "]"))
            for index in range(len(item) - 1, -1, -1):
                stack.append((False, item[index]))
                if index:
                    stack.append((True, ","))
            stack.append((True, "["))
        else:
            out.append(encode_basestring_ascii(_default(item)))
    return "".join(out)


def ack_ids(body) -> list[str]:
    """`{"SyncRecordIDs": [...]}` (the mobile app), a bare array, or the 2016 form
    `{"acknowledged_records": {"ItemFields": [...]}}`."""
    ids = None
    if isinstance(body, list):
        ids = body
    elif isinstance(body, dict):
        if isinstance(body.get("SyncRecordIDs"), list):
            ids = body["SyncRecordIDs"]
        elif isinstance(body.get("acknowledged_records"), dict):
            ids = body["acknowledged_records"].get("ItemFields")
    if not isinstance(ids, list):
        raise BadRequest('expected {"SyncRecordIDs": [...]} or an array of SyncIDs')
    out = [item for item in (i.get("SyncID") if isinstance(i, dict) else i for i in ids)
           if isinstance(item, str) and item]
    if _all_clean(out):  # the whole list checked at once (a page's worth of ids)
        return out
    return [clean_text(item, "SyncID", MAX_SYNC_ID) for item in out]  # names the first bad one


def _all_clean(ids: list[str]) -> bool:
    """Every id as clean_text would take it: none blank or longer than MAX_SYNC_ID, no NUL, no lone
    surrogate."""
    joined = "".join(ids)
    if "\x00" in joined or any(len(i) > MAX_SYNC_ID or i.isspace() for i in ids):
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be a positive integer") from None
    if limit < 1:
        raise BadRequest("limit must be a positive integer")
    return min(limit, MAX_PULL)


def _entry(row, mapping: V1Map) -> dict:
    """A queue entry's fields as the client reads them, but `data`: every key present (the Rust client
    requires them), "" where a value does not apply; a merge names the kept record."""
    return {"SyncID": row.sync_id, "RecordType": row.record_type,
            "RecordID": row.merge_keep if row.sync_type == "M" else row.record_id,
            "SyncType": row.sync_type, "StoreID": row.store_id or "",
            "KeyFieldID": mapping.key_field(row.record_type),
            "mergeIDtokeep": row.merge_keep or "", "mergeIDtodelete": row.merge_delete or ""}


def _has_data(row) -> bool:
    return row.sync_type in ("I", "U") and bool(row.data_text)


def pulled(row, version: int, mapping: V1Map) -> dict:
    """One queue entry as the client reads it, with its lowercase `data` parsed ({} where none applies)."""
    record = {**_entry(row, mapping), "data": orjson.loads(row.data_text) if _has_data(row) else {}}
    if version == 1:
        return mapping.from_v3(record)
    return record


def pulled_page(rows, version: int, mapping: V1Map) -> bytes:
    """The pulled entries as the JSON array sent. For v2 and v3 each record's `data` is spliced in as
    PostgreSQL wrote it (jsonb's text is valid JSON), never parsed and dumped again; v1 renames fields
    by number, so it goes through `pulled`."""
    if version == 1:
        return orjson.dumps([pulled(row, version, mapping) for row in rows])
    parts = []
    for row in rows:
        data = row.data_text.encode() if _has_data(row) else b"{}"
        parts.append(orjson.dumps(_entry(row, mapping))[:-1] + b',"data":' + data + b"}")
    return b"[" + b",".join(parts) + b"]"
