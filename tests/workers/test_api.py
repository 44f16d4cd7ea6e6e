"""Commit, then enqueue: a rolled-back transaction sends nothing; a committed one sends once."""
from models.users import ensure_tenant
from models.kinds import PROBES
from workers.api import submit_job


def test_rolled_back_transaction_enqueues_nothing(db_session, broker):
    ensure_tenant(db_session, "default")
    submit_job(db_session, broker, tenant_id="default", kind=PROBES["ingest"])
    assert broker.sent == []
    db_session.rollback()
    assert broker.sent == []
    db_session.commit()
    assert broker.sent == []


def test_committed_job_is_sent_once_after_commit(db_session, broker):
    ensure_tenant(db_session, "default")
    job, created = submit_job(db_session, broker, tenant_id="default", kind=PROBES["exports"],
                              idempotency_key="k1")
    assert created and broker.sent == []
    db_session.commit()
    assert broker.sent == [("exports.run_job", [str(job.id)], "exports")]
    again, created = submit_job(db_session, broker, tenant_id="default", kind=PROBES["exports"], idempotency_key="k1")
    db_session.commit()
    assert not created and again.id == job.id
    assert len(broker.sent) == 1


def test_failed_send_leaves_the_job_queued(db_session):
    class DeadBroker:
        def send_task(self, *a, **k):
            raise ConnectionError("redis down")

    ensure_tenant(db_session, "default")
    job, _ = submit_job(db_session, DeadBroker(), tenant_id="default", kind=PROBES["ingest"])
    db_session.commit()  # must not raise: the sweeper sends it later
    db_session.refresh(job)
    assert job.status == "QUEUED"


def test_stale_statistics_are_refreshed(engine):
    import uuid

    from sqlalchemy import text

    from workers.schedule import analyze_stale_tables
    table = f"stats_probe_{uuid.uuid4().hex[:8]}"
    kept = f"stats_kept_{uuid.uuid4().hex[:8]}"  # autovacuum off: its statistics are left alone
    with engine.connect() as conn:
        conn.execute(text(f"CREATE TABLE {table} (n int)"))
        conn.execute(text(f"INSERT INTO {table} SELECT generate_series(1, 5000)"))
        conn.execute(text(f"CREATE TABLE {kept} (n int) WITH (autovacuum_enabled = false)"))
        conn.execute(text(f"INSERT INTO {kept} SELECT generate_series(1, 5000)"))
        conn.commit()
        # the backend that wrote must flush its counters (another pooled connection's flush would not)
        conn.execute(text("SELECT pg_stat_force_next_flush()"))
        conn.commit()
    try:
        from sqlalchemy.orm import Session
        with Session(engine) as session:
            session.execute(text("SELECT pg_stat_clear_snapshot()"))
            analysed = analyze_stale_tables(session, min_changes=1000, fraction=0.1)
            session.commit()
        with engine.connect() as conn:
            auto = conn.execute(text("SELECT last_autoanalyze IS NOT NULL FROM pg_stat_user_tables "
                                     "WHERE relname = :t"), {"t": table}).scalar()
        assert table in analysed or auto, "stale table neither analysed here nor by autovacuum"
        assert kept not in analysed
        with engine.connect() as conn:
            stats = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}).scalar()
        assert stats == 5000
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}; DROP TABLE {kept}"))
