"""create_app(settings): the Flask front. It opens no connection at import or build time."""
from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import sessionmaker

from config.settings import Settings
from models.blobs import BlobStore
from models.db import engine_for, make_session_factory
from models.dialects import after_apply_hooks
from web import admin_users, auth, db, devices
from web.dialects import own_apis, register_all
from web.errors import install_error_handlers
from web.ops import console, session as ops_session
from web.exports import bp as exports_bp
from web.ops.health import bp as health_bp
from web.ops.jobs import bp as jobs_bp
from web.ops.metrics import bp as metrics_bp
from web.ops.metrics import install_request_metrics
from web.ops.openapi import bp as docs_bp
from workers.runtime import redis_client as make_redis


def create_app(settings: Settings, *, session_factory: sessionmaker | None = None, celery_app=None,
               redis_client=None, autocommit_factory: sessionmaker | None = None) -> Flask:
    app = Flask("fieldsync", static_folder=None)  # nothing served from the working directory
    app.config["FIELDSYNC_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.url_map.strict_slashes = False

    own_engines = session_factory is None  # a server's app (tests bring their own sessions)
    if own_engines:
        session_factory = make_session_factory(engine_for(settings, "web"))
        autocommit_factory = make_session_factory(engine_for(settings, "web", pool_size=2, autocommit=True))
    db.install(app, session_factory, autocommit_factory)

    if celery_app is None:
        from workers.app import make_celery
        celery_app = make_celery(settings)
    app.extensions["fieldsync_celery"] = celery_app

    _redis = {"client": redis_client}

    def get_redis():
        if _redis["client"] is None:
            _redis["client"] = make_redis(settings.redis_url)
        return _redis["client"]

    app.extensions["fieldsync_redis"] = get_redis
    app.extensions["fieldsync_blobs"] = BlobStore(settings.blob_dir)
    # the engine's after-apply hooks, for the few writes a view makes itself (mSupply's name_store_join)
    app.extensions["fieldsync_hooks"] = after_apply_hooks(settings)

    install_error_handlers(app)
    auth.install(app, settings)

    ops_session.install(app, settings)
    install_request_metrics(app)
    devices.install(app, write_behind=own_engines)

    app.register_blueprint(health_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(docs_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(admin_users.bp)
    console.register(app)
    core = set(app.blueprints)
    register_all(app, settings.dialects)
    own = own_apis(settings.dialects)
    app.extensions["fieldsync_own_apis"] = own
    # the dialects' blueprints: their routes follow upstream descriptions, not /openapi.json (except
    # the admin APIs a dialect adds to fieldsync's own)
    app.extensions["fieldsync_dialect_blueprints"] = (set(app.blueprints) - core
                                                      - {name for api in own for name in api.blueprints})

    @app.after_request
    def _cors(response):
        # Synkronus serves CORS to every origin; the others are harmless with it.
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        response.headers.setdefault("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
        response.headers.setdefault("Access-Control-Allow-Headers",
                                    "Accept, Authorization, Content-Type, X-CSRF-Token, x-api-version, "
                                    "Upload-Offset, Upload-Length, Content-Range")
        response.headers.setdefault("Access-Control-Expose-Headers",
                                    "Link, ETag, x-api-version-used, Upload-Offset, Upload-Length, Location")
        return response

    return app

