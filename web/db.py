"""The per-request session: opened on first use, rolled back and closed when the request ends.
Views commit explicitly (web.db.commit) when their work is done, so 'commit, then enqueue' holds."""
from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy.orm import Session, sessionmaker


def autocommit(view):
    """Mark a view whose statements each stand alone (a page read in one statement, a single upsert):
    its session runs them in autocommit, with no BEGIN, COMMIT or ROLLBACK round trips around them."""
    view.fieldsync_autocommit = True
    return view


def session() -> Session:
    if "db_session" not in g:
        factory = current_app.extensions["fieldsync_sessions"]
        view = current_app.view_functions.get(request.endpoint) if has_request_context() else None
        if getattr(view, "fieldsync_autocommit", False):
            factory = current_app.extensions["fieldsync_autocommit_sessions"] or factory
        g.db_session = factory()
    return g.db_session


def commit() -> None:
    if "db_session" in g:
        g.db_session.commit()


def install(app: Flask, session_factory: sessionmaker, autocommit_factory: sessionmaker | None = None) -> None:
    """`autocommit_factory`: sessions on autocommit connections (their own pool, so a connection never
    switches mode) for the views marked @autocommit; without one those views use `session_factory`."""
    app.extensions["fieldsync_sessions"] = session_factory
    app.extensions["fieldsync_autocommit_sessions"] = autocommit_factory

    @app.teardown_appcontext
    def _close(exc):
        db_session = g.pop("db_session", None)
        if db_session is not None:
            try:
                db_session.rollback()  # anything not committed by the view is discarded
            finally:
                db_session.close()
