"""Views marked web.db.autocommit run on autocommit connections (no BEGIN/COMMIT/ROLLBACK around their
statements); every other view keeps its transaction, and a marked view falls back to the ordinary
sessions when the app has no autocommit ones."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from models.db import make_engine, make_session_factory
from web import db


def _app(real_sessions, autocommit_factory) -> Flask:
    app = Flask("autocommit-test")
    db.install(app, real_sessions, autocommit_factory)

    def mode():
        session = db.session()
        session.execute(text("SELECT 1"))
        in_block = session.execute(text("SELECT now() = statement_timestamp()")).scalar()
        dbapi = session.connection().connection.dbapi_connection
        return {"autocommit": dbapi.autocommit, "fresh_transaction_per_statement": bool(in_block)}

    app.add_url_rule("/plain", "plain", mode)
    app.add_url_rule("/marked", "marked", db.autocommit(lambda: mode()))
    return app


@pytest.fixture
def autocommit_factory(settings):
    engine = make_engine(settings.database_url, pool_size=1, autocommit=True)
    yield make_session_factory(engine)
    engine.dispose()


def test_a_marked_view_runs_each_statement_on_its_own(real_sessions, autocommit_factory):
    client = _app(real_sessions, autocommit_factory).test_client()
    assert client.get("/marked").get_json() == {"autocommit": True, "fresh_transaction_per_statement": True}


def test_other_views_keep_one_transaction(real_sessions, autocommit_factory):
    client = _app(real_sessions, autocommit_factory).test_client()
    body = client.get("/plain").get_json()
    assert body["autocommit"] is False
    assert body["fresh_transaction_per_statement"] is False  # now() is the transaction's start


def test_a_marked_view_without_autocommit_sessions_uses_the_ordinary_ones(real_sessions):
    client = _app(real_sessions, None).test_client()
    assert client.get("/marked").get_json()["autocommit"] is False


def test_the_synkronus_pull_is_marked():
    from web.synkronus import views
    assert getattr(views.pull, "fieldsync_autocommit", False)
