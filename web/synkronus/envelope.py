"""Synkronus's error shape: `application/problem+json` (`type`, `title`, `status`, `detail`) as its API
description says, carrying also the `error` and `message` members that clients of the real server read;
and the `x-api-version-used` header on every answer."""
from __future__ import annotations

from flask import Response, jsonify, request

from web.errors import ApiError

API_VERSIONS = [{"version": "1.0.0", "releaseDate": "2025-01-01", "deprecated": False}]
CURRENT_API_VERSION = "1.0.0"
_KNOWN_VERSIONS = {v["version"] for v in API_VERSIONS}

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
          409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


def render_error(err: ApiError) -> Response:
    body = {"type": "about:blank", "title": TITLES.get(err.status, "Error"), "status": err.status,
            "detail": err.message, "error": err.code, "message": err.message}
    for key, value in err.extra.items():
        body.setdefault(key, value)
    response = jsonify(body)
    response.status_code = err.status
    response.mimetype = "application/problem+json"
    return response


def api_version_header(response: Response) -> Response:
    # x-api-version is accepted and only echoed (no negotiation upstream either).
    asked = request.headers.get("x-api-version")
    response.headers["x-api-version-used"] = asked if asked in _KNOWN_VERSIONS else CURRENT_API_VERSION
    return response
