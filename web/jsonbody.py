"""Reading JSON bodies safely: content type, size cap (Werkzeug's), nesting depth, NaN/Infinity."""
from __future__ import annotations

import json

from flask import request

from web.errors import MalformedJson, TooDeep, UnsupportedMediaType


class BadConstant:
    """Stands in for NaN / Infinity / -Infinity, which JSON does not allow: the record holding one is
    reported as a bad record instead of failing the whole request."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _bad_constant(text: str) -> BadConstant:
    return BadConstant(text)


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def loads(raw: bytes | str):
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedJson(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(raw, parse_constant=_bad_constant)
    except RecursionError:
        # The C scanner stops at the interpreter's recursion limit: a bomb of brackets becomes a 400.
        raise TooDeep("the JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


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
