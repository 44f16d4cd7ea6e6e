"""Reading JSON request bodies: content type, size cap (413, with or without Content-Length), malformed
or too deep (400)."""
from __future__ import annotations

import io

from flask import g, request
from werkzeug.exceptions import ClientDisconnected

from web.errors import BadRequest, MalformedJson, TooDeep, TooLarge, UnsupportedMediaType
from workers.jsonsafe import BadConstant, JsonError, loads as _loads

__all__ = ["BadConstant", "body_bytes", "body_stream", "is_json_mimetype", "loads", "read_json", "read_json_object"]

_READ_SIZE = 1 << 16
TOO_LARGE_MESSAGE = "the request body is larger than this endpoint accepts"


def is_json_mimetype(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


def loads(raw: bytes | str):
    try:
        return _loads(raw)
    except JsonError as exc:
        raise (TooDeep if exc.kind == "too_deep" else MalformedJson)(exc.message) from None
    except ValueError:
        # Python refuses integers of more than 4,300 digits (and the message names the interpreter).
        raise MalformedJson("malformed JSON: a number has too many digits") from None


class _CappedStream:
    """The WSGI input of a body without a Content-Length, read directly (the server frames it: wsgi.input_
    terminated) and refused with 413 once more than `cap` bytes arrive. Werkzeug's own wrapper stops
    silently at the cap, so a longer body looked complete and a body of exactly the cap was refused."""

    def __init__(self, stream, cap: int):
        self._stream, self._cap, self._pos = stream, cap, 0

    def read(self, size: int = -1) -> bytes:
        want = self._cap + 1 - self._pos if size is None or size < 0 else min(size, self._cap + 1 - self._pos)
        try:
            chunk = self._stream.read(want)
        except OSError:  # the client went away mid-body (gunicorn's NoMoreData is one)
            raise ClientDisconnected() from None
        self._pos += len(chunk)
        if self._pos > self._cap:
            raise TooLarge(TOO_LARGE_MESSAGE)
        return chunk


def body_stream():
    """The request body as a stream capped at `request.max_content_length` (set it first for a route
    with its own cap): Werkzeug's stream when a Content-Length was checked, else the capped input."""
    cap = request.max_content_length
    if request.content_length is None and cap is not None and "wsgi.input_terminated" in request.environ:
        return _CappedStream(request.environ["wsgi.input"], cap)
    return request.stream


def body_bytes() -> bytes:
    """The request body, read once. With a Content-Length Werkzeug checks it against the cap before
    reading (413); a body without one (chunked) is read up to the cap and one byte more, so an
    oversize body is refused with 413 having pulled at most cap + 1 bytes, never truncated."""
    cached = g.get("_fieldsync_body")
    if cached is not None:
        return cached
    cap = request.max_content_length
    if request.content_length is not None or cap is None:
        raw = request.get_data(cache=True)
    elif "wsgi.input_terminated" in request.environ:
        raw = _read_capped(body_stream())
    else:
        raw = request.get_data(cache=True)  # the server does not frame the body: Werkzeug reads none
    g._fieldsync_body = raw
    return raw


def _read_capped(stream: _CappedStream) -> bytes:
    out = io.BytesIO()  # getvalue() hands over the buffer without a second copy
    while chunk := stream.read(_READ_SIZE):  # raises TooLarge past the cap
        out.write(chunk)
    return out.getvalue()


def read_json(*, required: bool = True):
    """Parse the request body. Raises MalformedJson / TooDeep / UnsupportedMediaType / TooLarge."""
    if request.mimetype and not is_json_mimetype(request.mimetype):
        raise UnsupportedMediaType(f"expected application/json, got {request.mimetype}")
    raw = body_bytes()
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
