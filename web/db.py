"""The per-request session: opened on first use, rolled back and closed when the request ends.
Views commit explicitly (web.db.commit) when their work is done, so 'commit, then enqueue' holds."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session


def session() -> Session:
    if "db_session" not in g:
        g.db_session = current_app.extensions["fieldsync_sessions"]()
    return g.db_session


def commit() -> None:
    if "db_session" in g:
        g.db_session.commit()


def install(app: Flask, session_factory) -> None:
    app.extensions["fieldsync_sessions"] = session_factory

    @app.teardown_appcontext
    def _close(exc):
        db_session = g.pop("db_session", None)
        if db_session is not None:
            try:
                db_session.rollback()  # anything not committed by the view is discarded
            finally:
                db_session.close()
