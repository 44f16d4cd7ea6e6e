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
from web.inputs import InvalidInput, clean_text, json_problem
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
# web.inputs' refusal reasons as DIGIT's validation codes (the prefix of `<code>.<where>.<field>`).
_TEXT_CODES = {"required": "NotNull", "too_long": "Size", "nul": "Pattern", "surrogate": "Pattern",
               "type": "JsonMappingException", "range": "Range", "number": "Pattern", "too_deep": "Size"}


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


def text_field(value, field: str, *, where: str = "sync", max_length: int = 256, required: bool = True) -> str | None:
    """web.inputs.clean_text() (stripped), its refusals in DIGIT's vocabulary: NotNull, Size, Pattern
    (a NUL or a lone surrogate) or JsonMappingException (not text)."""
    try:
        return clean_text(value, field, max_length, required=required, strip=True)
    except InvalidInput as err:
        code = _TEXT_CODES[err.reason]
        name = f"{where}.{field}" if where else field
        if code == "JsonMappingException":
            raise digit_error(code, f"{name} must be text") from None
        raise digit_error(f"{code}.{name}", err.message) from None


def required_text(obj: dict, field: str, *, where: str = "sync", max_length: int = 256) -> str:
    return text_field(obj.get(field), field, where=where, max_length=max_length)


def check_document(value, field: str, *, max_string: int = 10_000) -> None:
    """A JSON value a request stores as it is (auditDetails, a form): no NUL and no lone surrogate in
    any key or text, and no text longer than `max_string`. Raises DIGIT's Pattern/Size error."""
    problem = json_problem(value, max_string=max_string, path=field)
    if problem is not None:
        reason, message, path = problem
        raise digit_error(f"{_TEXT_CODES[reason]}.{field}", f"{path} {message}")


def response_info(info: dict, status: str = "SUCCESSFUL") -> dict:
    msg_id = info.get("msgId")
    return {"apiId": info.get("apiId"), "ver": info.get("ver"), "ts": now_ms(),
            "resMsgId": msg_id if msg_id else str(uuid.uuid4()), "msgId": msg_id, "status": status}
