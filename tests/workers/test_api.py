"""Commit, then enqueue: a rolled-back transaction sends nothing; a committed one sends once."""
from models.users import ensure_tenant
from workers.api import submit_job


def test_rolled_back_transaction_enqueues_nothing(db_session, broker):
    ensure_tenant(db_session, "default")
    submit_job(db_session, broker, tenant_id="default", kind="probe.ingest")
    assert broker.sent == []
    db_session.rollback()
    assert broker.sent == []
    db_session.commit()
    assert broker.sent == []


def test_committed_job_is_sent_once_after_commit(db_session, broker):
    ensure_tenant(db_session, "default")
    job, created = submit_job(db_session, broker, tenant_id="default", kind="probe.exports",
                              idempotency_key="k1")
    assert created and broker.sent == []
    db_session.commit()
    assert broker.sent == [("exports.run_job", [str(job.id)], "exports")]
    again, created = submit_job(db_session, broker, tenant_id="default", kind="probe.exports", idempotency_key="k1")
    db_session.commit()
    assert not created and again.id == job.id
    assert len(broker.sent) == 1


def test_failed_send_leaves_the_job_queued(db_session):
    class DeadBroker:
        def send_task(self, *a, **k):
            raise ConnectionError("redis down")

    ensure_tenant(db_session, "default")
    job, _ = submit_job(db_session, DeadBroker(), tenant_id="default", kind="probe.ingest")
    db_session.commit()  # must not raise: the sweeper sends it later
    db_session.refresh(job)
    assert job.status == "QUEUED"


def test_stale_statistics_are_refreshed(db_session):
    from sqlalchemy import text

    from workers.schedule import analyze_stale_tables
    db_session.execute(text("CREATE TABLE stats_probe (n int)"))
    db_session.execute(text("INSERT INTO stats_probe SELECT generate_series(1, 5000)"))
    db_session.commit()
    # pg_stat counters are per-transaction snapshots flushed asynchronously; the helper only reads them
    analysed = analyze_stale_tables(db_session, min_changes=0, fraction=0)
    assert isinstance(analysed, list)
