"""mSupply sync v1–v4 dialect: queue, login and v4 endpoints for satellites, the admin API for
sites, and the error shape mSupply clients read (`{"error": "<text>"}` on every failure)."""
from __future__ import annotations

from flask import Flask

from web.dialects import OwnApi
from web.errors import catch_all, register_renderer
from web.msupply import admin, v1map, v4, views
from web.msupply.envelope import render_admin_error, render_error

# Unknown mSupply paths and wrong methods answer in mSupply's shape too.
UNMATCHED = ("/sync/v<int(min=1, max=4):version>/<path:rest>", "/sync/v<int(min=1, max=3):version>",
             "/api/v4/<path:rest>")


def register(app: Flask) -> None:
    settings = app.config["FIELDSYNC_SETTINGS"]
    app.extensions["msupply_v1map"] = v1map.load(settings.option("msupply", "v1_map_file"))
    rest = catch_all("msupply_fallback", UNMATCHED)
    for blueprint in (views.bp, v4.sync_bp, v4.api_bp, rest):
        app.register_blueprint(blueprint)
        register_renderer(app, blueprint.name, render_error)
    app.register_blueprint(admin.bp)
    register_renderer(app, admin.bp.name, render_admin_error)


def own_api() -> OwnApi:
    """The sites admin API is fieldsync's own (its error shape, its description in /openapi.json)."""
    return OwnApi(blueprints=frozenset({admin.bp.name}), paths=admin.OPENAPI_PATHS, schemas=admin.SCHEMAS)
