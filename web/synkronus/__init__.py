"""Synkronus 1.0.3 dialect: auth, users, push and pull, API versions."""
from __future__ import annotations

from flask import Flask

from web.errors import register_renderer
from web.synkronus import auth, users, views
from web.synkronus import attachments
from web.synkronus import app_bundles
from web.synkronus import exports
from web.synkronus.envelope import api_version_header, render_error

BLUEPRINTS = (auth.bp, users.bp, views.bp, attachments.bp, exports.bp, app_bundles.bp, app_bundles.unmatched_bp)


def register(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
        register_renderer(app, bp.name, render_error)
    app.after_request(api_version_header)
