"""mSupply wire shapes at the edge: the push body (v1 converted to v3 shape), the acknowledgement
body in its three accepted forms, and pulled records rendered for v1 or v2/v3."""
from __future__ import annotations

import orjson

from web.errors import BadRequest
from web.jsonbody import BadConstant
from web.msupply.v1map import V1Map

MAX_PULL = 1000     # cap on `limit` (the mobile app asks for 10 to 500)


def push_records(body, version: int, mapping: V1Map) -> list:
    if not isinstance(body, list):
        raise BadRequest("the body must be a JSON array of sync records")
    if version == 1:
        body = [mapping.to_v3(record) for record in body]
    return body


def sync_ids(records: list) -> list[str]:
    """The batch's SyncIDs in order (a position stands in for a record without one): its identity."""
    return [str(r.get("SyncID") or f"#{i}") if isinstance(r, dict) else f"#{i}" for i, r in enumerate(records)]


def dump_payload(records: list) -> bytes:
    # A NaN or Infinity read from the body becomes its text, so the record is kept (as text) rather
    # than failing the whole push.
    return orjson.dumps(records, default=lambda v: v.text if isinstance(v, BadConstant) else str(v))


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
    out = []
    for item in ids:
        if isinstance(item, dict):
            item = item.get("SyncID")
        if isinstance(item, str) and item:
            out.append(item)
    return out


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


def pulled(row, version: int, mapping: V1Map) -> dict:
    """One queue entry as the client reads it: lowercase `data`, every key present (the Rust client
    requires them), "" where a value does not apply."""
    data = {}
    if row.sync_type in ("I", "U") and row.data_text:
        data = orjson.loads(row.data_text)
    record = {"SyncID": row.sync_id, "RecordType": row.record_type, "RecordID": row.record_id,
              "SyncType": row.sync_type, "StoreID": row.store_id or "",
              "KeyFieldID": mapping.key_field(row.record_type),
              "mergeIDtokeep": row.merge_keep or "", "mergeIDtodelete": row.merge_delete or "", "data": data}
    if row.sync_type == "M":
        record["RecordID"] = row.merge_keep
    if version == 1:
        return mapping.from_v3(record)
    return record
