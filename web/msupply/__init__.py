"""mSupply sync v1–v4 dialect: queue, login and v4 endpoints for satellites, the admin API for
sites, and the error shape mSupply clients read (`{"error": "<text>"}` on every failure)."""
from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from web.errors import ApiError, NotFound

SYNC_BLUEPRINTS = ("msupply_sync", "msupply_v4", "msupply_api_v4", "msupply_fallback")


def render_error(err: ApiError) -> Response:
    from web.msupply.sync import json_response
    return json_response({"error": err.message}, err.status)


def render_admin_error(err: ApiError) -> Response:
    from web.msupply.sync import json_response
    return json_response({"error": err.code, "message": err.message, **err.extra}, err.status)


def _fallback(**_):
    """Unknown mSupply paths and wrong methods answer in mSupply's shape too (a route that did not
    match has no blueprint, so the app's default shape would apply otherwise)."""
    from flask import current_app
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
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


def register(app: Flask) -> None:
    from flask import Blueprint

    from web.errors import register_renderer
    from web.msupply import admin, sync, v1map, v4
    from workers import msupply_jobs  # the queue fan-out hook runs for web-side applies too

    settings = app.config["FIELDSYNC_SETTINGS"]
    msupply_jobs.configure(settings)
    v1map.use((settings.extra or {}).get("msupply_v1_map_file"))

    fallback = Blueprint("msupply_fallback", __name__)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    fallback.add_url_rule("/sync/v<int(min=1, max=4):version>/<path:rest>", view_func=_fallback, methods=methods)
    fallback.add_url_rule("/sync/v<int(min=1, max=3):version>", view_func=_fallback, methods=methods)
    fallback.add_url_rule("/api/v4/<path:rest>", view_func=_fallback, methods=methods)
    for blueprint in (sync.bp, v4.sync_bp, v4.api_bp, fallback):
        app.register_blueprint(blueprint)
    app.register_blueprint(admin.bp)
    for name in SYNC_BLUEPRINTS:
        register_renderer(app, name, render_error)
    register_renderer(app, admin.bp.name, render_admin_error)
