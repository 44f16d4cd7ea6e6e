"""DIGIT's envelope and error shape, kept in one place.

- Requests carry `RequestInfo` or `requestInfo` (both accepted; nothing in it is enforced except the
  `authToken` used for auth) and a `sync` object.
- Successes carry `responseInfo` built the way DIGIT services build it: apiId, ver and msgId copied from
  the request, `ts` now in epoch milliseconds, `resMsgId` = msgId or a new UUID, status "SUCCESSFUL".
- Errors are the tracer library's body `{"ResponseInfo": null, "Errors": [{code, message, description,
  params}]}`: HTTP 400 for validation and not-found, 401 for auth, 403 for a role, 409 for an upload
  offset mismatch, 413 for oversize, 5xx only for crashes (and never with exception text).
- Timestamps (dialects.md §7.13): `sync.createdAt` / `modifiedAt` are epoch **seconds**, as in the
  contract's example; `responseInfo.ts` is epoch milliseconds. `sync_time` is the one place to change it."""
from __future__ import annotations

import datetime as dt
import time
import uuid

from flask import jsonify

from web.errors import ApiError
from web.jsonbody import read_json

# §7.13: the unit of sync.createdAt / modifiedAt. 1 = epoch seconds; 1000 would be milliseconds.
SYNC_TIME_FACTOR = 1

# fieldsync's generic error codes in DIGIT's vocabulary (the tracer's exception names).
_CODES = {
    "malformed_json": "JsonParseException",
    "json_too_deep": "JsonParseException",
    "unsupported_media_type": "UnsupportedMediaType",
    "unauthorized": "InvalidAccessTokenException",
    "forbidden": "AccessDeniedException",
    "not_found": "NotFoundException",
    "method_not_allowed": "MethodNotAllowedException",
    "payload_too_large": "PayloadTooLargeException",
    "too_many_requests": "TooManyRequestsException",
    "bad_request": "BadRequestException",
    "internal_error": "InternalServerError",
    "service_unavailable": "ServiceUnavailableException",
}
# Statuses that keep their own number; every other client error is DIGIT's 400.
_KEPT_STATUSES = {401, 403, 409, 413, 429}
UNHANDLED_MESSAGE = "An unhandled exception occurred on the server"


def sync_time(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    return int(value.timestamp() * SYNC_TIME_FACTOR)


def now_ms() -> int:
    return int(time.time() * 1000)


def digit_error(code: str, message: str, *, status: int = 400, **extra) -> ApiError:
    return ApiError(message, code=code, status=status, **extra)


def render_error(err: ApiError):
    """The DIGIT renderer registered for the dialect's blueprints."""
    status = err.status
    if status >= 500:
        code, message = _CODES.get(err.code, "InternalServerError"), UNHANDLED_MESSAGE
        if status == 503:
            message = err.message
    else:
        code, message = _CODES.get(err.code, err.code), err.message
        if status not in _KEPT_STATUSES:
            status = 400
    body = {"ResponseInfo": None, "Errors": [{
        "code": code, "message": message, "description": err.extra.get("description"),
        "params": err.extra.get("params"),
    }]}
    response = jsonify(body)
    response.status_code = status
    return response


def read_envelope() -> tuple[dict, dict]:
    """(requestInfo, sync) from the body; a missing or mistyped part is a DIGIT-style 400."""
    try:
        body = read_json()
    except ApiError as err:
        if err.code == "malformed_json" and "empty" in err.message:
            raise digit_error("MissingJsonException", "JSON body has errors or is missing") from None
        raise
    if not isinstance(body, dict):
        raise digit_error("MissingJsonException", "JSON body has errors or is missing")
    info = body.get("RequestInfo") if body.get("RequestInfo") is not None else body.get("requestInfo")
    if info is None:
        info = {}
    if not isinstance(info, dict):
        raise digit_error("JsonMappingException", "RequestInfo must be an object")
    sync = body.get("sync")
    if sync is None:
        raise digit_error("NotNull.sync", "sync is required")
    if not isinstance(sync, dict):
        raise digit_error("JsonMappingException", "sync must be an object")
    return info, sync


def required_text(obj: dict, field: str, *, where: str = "sync", max_length: int = 256) -> str:
    value = obj.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise digit_error(f"NotNull.{where}.{field}", f"{field} is required")
    if not isinstance(value, str):
        raise digit_error("JsonMappingException", f"{where}.{field} must be text")
    if len(value) > max_length:
        raise digit_error(f"Size.{where}.{field}", f"{field} is longer than {max_length} characters")
    return value.strip()


def response_info(info: dict, status: str = "SUCCESSFUL") -> dict:
    msg_id = info.get("msgId")
    return {"apiId": info.get("apiId"), "ver": info.get("ver"), "ts": now_ms(),
            "resMsgId": msg_id if msg_id else str(uuid.uuid4()), "msgId": msg_id, "status": status}
