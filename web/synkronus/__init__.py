"""Synkronus 1.0.3 dialect: auth, users, push and pull, API versions."""
from __future__ import annotations

from flask import Flask, request

API_VERSIONS = [{"version": "1.0.0", "releaseDate": "2025-01-01", "deprecated": False}]
CURRENT_API_VERSION = "1.0.0"


def register(app: Flask) -> None:
    from web.errors import default_renderer, register_renderer
    from web.synkronus.auth_views import bp as auth_bp
    from web.synkronus.sync_views import bp as sync_bp
    from web.synkronus.users import bp as users_bp
    for bp in (auth_bp, users_bp, sync_bp):
        app.register_blueprint(bp)
        register_renderer(app, bp.name, default_renderer)

    known = {v["version"] for v in API_VERSIONS}

    @app.after_request
    def _api_version(response):
        # x-api-version is accepted and only echoed (no negotiation upstream either).
        asked = request.headers.get("x-api-version")
        response.headers["x-api-version-used"] = asked if asked in known else CURRENT_API_VERSION
        return response
