"""Reading JSON request bodies: content type, size cap (Werkzeug's, 413), malformed or too deep (400)."""
from __future__ import annotations

from flask import request

from web.errors import BadRequest, MalformedJson, TooDeep, UnsupportedMediaType
from workers.jsonsafe import BadConstant, JsonError, loads as _loads

__all__ = ["BadConstant", "is_json_mimetype", "loads", "read_json", "read_json_object"]


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def loads(raw: bytes | str):
    try:
        return _loads(raw)
    except JsonError as exc:
        raise (TooDeep if exc.kind == "too_deep" else MalformedJson)(exc.message) from None


def read_json(*, required: bool = True):
    """Parse the request body. Raises MalformedJson / TooDeep / UnsupportedMediaType; the size cap
    raises 413 from Werkzeug while reading."""
    if request.mimetype and not is_json_mimetype(request.mimetype):
        raise UnsupportedMediaType(f"expected application/json, got {request.mimetype}")
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise MalformedJson("the request body is empty; a JSON document is required")
        return None
    return loads(raw)


def read_json_object(message: str = "the body must be a JSON object", **error) -> dict:
    """read_json() for endpoints that take an object; anything else is a 400 with `message`."""
    body = read_json()
    if not isinstance(body, dict):
        raise BadRequest(message, **error)
    return body
