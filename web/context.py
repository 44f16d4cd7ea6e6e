"""The app's shared parts, as a view reaches them: settings, the Celery app (to send jobs), Redis, the
blob store and the engine's after-apply hooks."""
from __future__ import annotations

from flask import current_app


def settings():
    return current_app.config["FIELDSYNC_SETTINGS"]


def celery():
    return current_app.extensions["fieldsync_celery"]


def redis():
    return current_app.extensions["fieldsync_redis"]()


def blobs():
    return current_app.extensions["fieldsync_blobs"]


def hooks(namespace: str) -> list:
    return current_app.extensions["fieldsync_hooks"].get(namespace, [])
