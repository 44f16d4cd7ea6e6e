"""mSupply's error shape: `{"error": "<text>"}` on every failure of the sync endpoints (what mSupply
clients read), fieldsync's `{"error", "message"}` on the admin API."""
from __future__ import annotations

import orjson
from flask import Response

from web.errors import ApiError


def json_response(value, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status=status, mimetype="application/json")


def render_error(err: ApiError) -> Response:
    return json_response({"error": err.message}, err.status)


def render_admin_error(err: ApiError) -> Response:
    return json_response({"error": err.code, "message": err.message, **err.extra}, err.status)
