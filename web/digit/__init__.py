"""DIGIT Health sync dialect: the filestore (multipart and resumable uploads, signed download URLs), the
three sync endpoints, and the admin forms API. The dialect's blueprints answer errors in DIGIT's shape;
the admin API, being fieldsync's own, keeps fieldsync's."""
from __future__ import annotations

from web.digit import admin_forms, filestore, uploads, views
from web.digit.envelope import render_error
from web.dialects import OwnApi
from web.errors import catch_all, register_renderer

# Unknown paths under DIGIT's prefixes answer in DIGIT's shape too.
UNMATCHED = ("/sync/file/<path:rest>", "/sync/forms/<path:rest>", "/filestore/<path:rest>")


def register(app) -> None:
    for blueprint in (filestore.bp, uploads.bp, views.bp, catch_all("digit_fallback", UNMATCHED)):
        app.register_blueprint(blueprint)
        register_renderer(app, blueprint.name, render_error)
    app.register_blueprint(admin_forms.bp)


def own_api() -> OwnApi:
    """The forms admin API is fieldsync's own (its error shape, its description in /openapi.json)."""
    return OwnApi(blueprints=frozenset({admin_forms.bp.name}), paths=admin_forms.OPENAPI_PATHS,
                  schemas=admin_forms.SCHEMAS)
