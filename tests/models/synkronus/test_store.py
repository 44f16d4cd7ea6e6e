"""Synkronus's SQL: pull cursors only move forwards, and a push never tells a client a version above
what it has pulled."""
from sqlalchemy import text

from models import engine
from models.synkronus.store import advance_cursor, client_cursor, list_cursors, safe_current_version
from models.users import ensure_tenant


def test_cursor_moves_forwards_only(db_session):
    ensure_tenant(db_session, "syn-a")
    assert client_cursor(db_session, "syn-a", "phone") is None
    advance_cursor(db_session, "syn-a", "phone", 40)
    advance_cursor(db_session, "syn-a", "phone", 12)   # a late, older pull answer
    assert client_cursor(db_session, "syn-a", "phone") == 40
    advance_cursor(db_session, "syn-a", "phone", 41)
    assert client_cursor(db_session, "syn-a", "phone") == 41
    assert [(r.client_id, r.pulled_version) for r in list_cursors(db_session, "syn-a")] == [("phone", 41)]
    assert list_cursors(db_session, "syn-other") == []


def test_safe_current_version_is_bounded_by_the_clients_pull(db_session):
    ensure_tenant(db_session, "syn-b")
    engine.ensure_counter(db_session, "syn-b")
    db_session.execute(text("UPDATE sync_counters SET value = 90 WHERE tenant_id = 'syn-b'"))
    assert safe_current_version(db_session, "syn-b", "never-pulled") == 0
    advance_cursor(db_session, "syn-b", "phone", 30)
    assert safe_current_version(db_session, "syn-b", "phone") == 30
    advance_cursor(db_session, "syn-b", "phone", 500)
    assert safe_current_version(db_session, "syn-b", "phone") == 90
