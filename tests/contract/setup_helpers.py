"""The contract suite's only imports of application modules, kept here so that a move of models/, web/ or
workers/ is fixed in one place. Everything else in tests/contract/ talks HTTP."""
from __future__ import annotations


def build_app(settings, **kwargs):
    """The Flask app, built like tests/conftest.py builds it (session_factory=, celery_app=,
    redis_client=)."""
    from web.app import create_app
    app = create_app(settings, **kwargs)
    app.testing = True
    return app


def ensure_system_admin(session_factory, username: str, password: str, rounds: int = 4) -> None:
    """The bootstrap (system) admin that `fieldsync serve` creates at start; the test apps do not."""
    from models.users import bootstrap_admin
    session = session_factory()
    try:
        bootstrap_admin(session, username, password, rounds=rounds)
        session.commit()
    finally:
        session.close()
