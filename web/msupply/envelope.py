"""mSupply's error shape: `{"error": "<text>"}` on every failure of the sync endpoints (what mSupply
clients read), fieldsync's `{"error", "message"}` on the admin API; unknown mSupply paths and wrong
methods answer in the same shape."""
from __future__ import annotations

import orjson
from flask import Response, current_app, request
from werkzeug.exceptions import HTTPException

from web.errors import ApiError, NotFound

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def json_response(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


def render_error(err: ApiError) -> Response:
    return json_response({"error": err.message}, err.status)


def render_admin_error(err: ApiError) -> Response:
    return json_response({"error": err.code, "message": err.message, **err.extra}, err.status)


def fallback(**_):
    """Unknown mSupply paths and wrong methods answer in mSupply's shape too (a route that did not
    match has no blueprint, so the app's default shape would apply otherwise)."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in METHODS:
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.endpoint != request.endpoint:
            allowed.append(method)
    if allowed:
        err = ApiError(f"{request.method} is not allowed here", code="method_not_allowed", status=405)
        response = render_error(err)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    raise NotFound(f"no mSupply endpoint at {request.path}")
