"""One error vocabulary, rendered per dialect. Views raise ApiError (or let Werkzeug raise); the app's
single handler picks the renderer registered for the request's blueprint. A 5xx never carries
exception text."""
from __future__ import annotations

import logging
from typing import Callable

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})  # HTTP headers of the answer (Allow, Upload-Offset, …)
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class TooDeep(ApiError):
    status, code = 400, "json_too_deep"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"


class Unavailable(ApiError):
    status, code = 503, "service_unavailable"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 429: "too_many_requests"}

Renderer = Callable[[ApiError], Response]


def default_renderer(err: ApiError) -> Response:
    """fieldsync's own shape (also Synkronus's): problem+json for 401/403, else {error, message}."""
    if err.status in (401, 403):
        body = {"type": "about:blank", "title": "Unauthorized" if err.status == 401 else "Forbidden",
                "status": err.status, "detail": err.message}
        resp = jsonify(body)
        resp.mimetype = "application/problem+json"
    else:
        body = {"error": err.code, "message": err.message}
        body.update(err.extra)
        resp = jsonify(body)
    resp.status_code = err.status
    return resp


def register_renderer(app: Flask, blueprint_name: str | None, renderer: Renderer) -> None:
    app.extensions.setdefault("fieldsync_renderers", {})[blueprint_name] = renderer


MAX_MESSAGE = 1000


def _safe_text(value: str) -> str:
    """Text an error body can always carry: no NUL, no lone surrogate (which no JSON encoder should be
    asked to write), and short, whatever part of the request a message repeats."""
    if len(value) > MAX_MESSAGE:
        value = value[:MAX_MESSAGE] + "…"
    value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _safe(value):
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, list):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {_safe(k) if isinstance(k, str) else k: _safe(v) for k, v in value.items()}
    return value


def render(err: ApiError) -> Response:
    err.message = _safe_text(str(err.message))
    err.code = _safe_text(str(err.code))
    err.extra = {key: _safe(value) for key, value in err.extra.items()}
    from flask import g
    g.fieldsync_error_code = err.code  # what a device's failed request is recorded with (web.devices)
    renderers = current_app.extensions.get("fieldsync_renderers", {})
    renderer = renderers.get(request.blueprint) or renderers.get(None) or default_renderer
    response = renderer(err)
    if err.status == 429 and "retry_after" in err.extra:
        response.headers["Retry-After"] = str(err.extra["retry_after"])
    for name, value in err.headers.items():
        response.headers[name] = value
    return response


def unmatched(**_):
    """The view of a dialect's catch-all routes (registered on one of the dialect's blueprints, so the
    answer is in the dialect's own shape): a known path with another method is 405 with `Allow`, any
    other path under the dialect's prefixes 404."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint.rpartition(".")[0] != request.blueprint:  # a real route, not a catch-all
            allowed.append(method)
    if allowed:
        raise ApiError(f"{request.method} is not allowed here", code="method_not_allowed", status=405,
                       headers={"Allow": ", ".join(allowed)})
    raise NotFound(f"nothing at {request.path}")


def catch_all(name: str, rules: tuple[str, ...]):
    """A blueprint answering every method on `rules` with `unmatched` (register it after the dialect's
    own blueprints, with the dialect's renderer)."""
    from flask import Blueprint
    blueprint = Blueprint(name, __name__)
    for number, rule in enumerate(rules):
        blueprint.add_url_rule(rule, endpoint=f"unmatched{number}", view_func=unmatched,
                               methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    return blueprint


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return render(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        status = err.code or 500
        if status >= 500:
            return render(ApiError("the server could not complete the request", code="internal_error",
                                   status=status))
        message = err.description or err.name
        if status == 413:
            message = "the request body is larger than this endpoint accepts"
        api_err = ApiError(message, code=_HTTP_CODES.get(status, err.name.lower().replace(" ", "_")),
                           status=status)
        response = render(api_err)
        if status == 405 and getattr(err, "valid_methods", None):
            response.headers["Allow"] = ", ".join(err.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _crash(err: Exception):
        from sqlalchemy.exc import OperationalError
        if isinstance(err, OperationalError):
            log.warning("database unavailable: %s", type(err).__name__)
            response = render(Unavailable("the database is unavailable; try again shortly"))
            response.headers["Retry-After"] = "5"
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render(ApiError("the server could not complete the request", code="internal_error", status=500))
