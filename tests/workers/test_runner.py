"""How the runner ends a job on a real PostgreSQL: data errors are final (never retried as transient),
failure details carry no driver text or row data, a job's result can always be stored, and a pipeline
may end its job in its own last transaction (with the work it describes)."""
import dataclasses

import pytest
from sqlalchemy import text

from models import jobs
from models.kinds import PROBES
from models.tables import Job
from models.users import ensure_tenant
from workers.errors import TransientError
from workers.registry import Registry
from workers.runner import is_transient, run_job
from workers.runtime import Runtime

KIND = PROBES["ingest"]
SECRET = "row-data-7f3a"  # stands for a record's content: it must never reach a stored failure


@pytest.fixture
def runner(settings, isolated_sessions, db_session):
    """run(pipeline) -> (how it ended, the job row). Chunks of 2 records (run_apply)."""
    runtime = Runtime(dataclasses.replace(settings, chunk_size=2), isolated_sessions)

    def run(pipeline):
        registry = Registry()
        registry.add(KIND, pipeline)
        runtime.__dict__["registry"] = registry
        ensure_tenant(db_session, "default")
        job, _ = jobs.create_job(db_session, tenant_id="default", kind=KIND)
        db_session.commit()
        try:
            outcome = run_job(runtime, str(job.id))
        except TransientError:
            outcome = "transient"
        db_session.expire_all()
        return outcome, db_session.get(Job, job.id)
    return run


def _index_row_too_big(ctx):
    with ctx.session() as session:
        session.execute(text("CREATE TEMP TABLE IF NOT EXISTS big_keys (k text); "
                             "CREATE INDEX IF NOT EXISTS big_keys_k ON big_keys (k)"))
        # ~22 KB of incompressible text: "index row requires … bytes" (SQLSTATE 54000)
        session.execute(text("INSERT INTO big_keys SELECT :tag || string_agg(md5(random()::text), '') "
                             "FROM generate_series(1, 700)"), {"tag": SECRET})


def _bad_jsonb_in_copy(ctx):
    with ctx.session() as session:
        session.execute(text("CREATE TEMP TABLE IF NOT EXISTS docs (d jsonb)"))
        import io
        raw = session.connection().connection.dbapi_connection
        with raw.cursor() as cur:  # a raw psycopg2 error, not wrapped by SQLAlchemy
            cur.copy_expert("COPY docs FROM STDIN", io.StringIO('{"v": "%s \\\\u0000"}\n' % SECRET))


def _bad_jsonb_in_sql(ctx):
    with ctx.session() as session:
        session.execute(text("SELECT CAST(:v AS jsonb)"), {"v": '{"v": "%s \\u0000"}' % SECRET})


def _crash(ctx):
    raise RuntimeError(f"boom while reading {SECRET}")


@pytest.mark.parametrize("pipeline, sqlstate", [(_index_row_too_big, "54000"), (_bad_jsonb_in_copy, "22P05"),
                                                 (_bad_jsonb_in_sql, "22P05")])
def test_a_data_error_fails_the_job_at_once_without_driver_text(runner, pipeline, sqlstate):
    outcome, job = runner(pipeline)
    assert outcome == "failed"  # not released for another try
    assert job.status == "FAILED" and job.attempts == 1
    assert job.error_code == "storage_rejected"
    assert sqlstate in job.error_detail
    assert SECRET not in job.error_detail and "psycopg2" not in job.error_detail
    assert "COPY" not in job.error_detail and "index row" not in job.error_detail


def test_a_crash_stores_the_exception_type_only(runner):
    outcome, job = runner(_crash)
    assert outcome == "failed" and job.error_code == "internal_error"
    assert "RuntimeError" in job.error_detail and SECRET not in job.error_detail and "boom" not in job.error_detail


def test_a_result_holding_unstorable_values_is_stored(runner):
    result = {"text": "a\x00b", "surrogate": "x\ud800", "\udc00key": 1, "big": 2 ** 70, "ok": [1, "two"]}
    outcome, job = runner(lambda ctx: result)
    assert outcome == "completed" and job.status == "COMPLETED"
    assert job.result["text"] == "a\\u0000b" and job.result["surrogate"] == "x\\ud800"
    assert job.result["big"] == str(2 ** 70) and job.result["ok"] == [1, "two"]


def test_a_lost_connection_is_still_transient():
    import psycopg2
    from workers.runner import is_data_error
    from sqlalchemy.exc import OperationalError
    lost = OperationalError("SELECT 1", {}, psycopg2.OperationalError("server closed the connection"))
    assert is_transient(lost) and not is_data_error(lost)
    assert is_transient(psycopg2.OperationalError("connection reset"))
    assert not is_transient(ValueError("x"))


def test_a_pipeline_may_end_its_job_itself_and_the_runner_leaves_that_end_alone(runner):
    def pipeline(ctx):
        with ctx.session() as session:
            ctx.finish(session, result={"ended_by": "pipeline"})
        return {"ended_by": "runner"}
    outcome, job = runner(pipeline)
    assert outcome == "completed" and job.status == "COMPLETED"
    assert job.result == {"ended_by": "pipeline"}


def _records(n):
    from models.engine import Incoming
    return [Incoming(position=i, key=f"k{i}", record_type="form", data={"n": i}) for i in range(n)]


def _stored_keys(db_session):
    return sorted(db_session.execute(text("SELECT record_key FROM records WHERE tenant_id = 'default' "
                                          "AND namespace = 'runner-test'")).scalars())


def test_the_end_hook_runs_once_inside_the_last_chunks_transaction(runner, db_session):
    from workers.apply import run_apply
    seen = []

    def pipeline(ctx):
        def on_end(session, counts):
            seen.append(dict(counts))
            # the last chunk is written but not committed yet: this transaction sees it, and ends the job
            visible = session.execute(text("SELECT count(*) FROM records WHERE namespace = 'runner-test'")).scalar()
            ctx.finish(session, result={"visible": visible})
        run_apply(ctx, iter(_records(5)), namespace="runner-test", origin=None, total=5, on_end=on_end)
        return {"ended_by": "runner"}
    outcome, job = runner(pipeline)
    assert outcome == "completed" and job.result == {"visible": 5}
    assert len(seen) == 1 and seen[0]["accepted"] == 5
    assert job.checkpoint == 5 and job.progress_done == 5
    assert _stored_keys(db_session) == [f"k{i}" for i in range(5)]


def test_a_failing_end_hook_takes_only_the_last_chunk_with_it(runner, db_session):
    from workers.apply import run_apply

    def pipeline(ctx):
        def on_end(session, counts):
            raise RuntimeError("the answer could not be made")
        run_apply(ctx, iter(_records(5)), namespace="runner-test", origin=None, total=5, on_end=on_end)
    outcome, job = runner(pipeline)
    assert outcome == "failed" and job.status == "FAILED"
    # chunks of 2: [k0, k1] and [k2, k3] committed; the last one [k4] rolled back with the failed end
    assert job.checkpoint == 4
    assert _stored_keys(db_session) == ["k0", "k1", "k2", "k3"]


def test_a_redelivery_with_nothing_left_to_apply_still_runs_the_end_hook(runner, db_session):
    from workers.apply import run_apply

    def pipeline(ctx):
        ctx.job = dataclasses.replace(ctx.job, checkpoint=5)  # as if an earlier delivery applied them all
        run_apply(ctx, iter(_records(5)), namespace="runner-test", origin=None, total=5,
                  on_end=lambda session, counts: ctx.finish(session, result={"resumed": True}))
    outcome, job = runner(pipeline)
    assert outcome == "completed" and job.result == {"resumed": True}
    assert job.progress_done == 5 and _stored_keys(db_session) == []


def test_a_claim_does_not_wait_for_the_wal_flush_and_make_durable_does(real_sessions):
    with real_sessions() as session:
        ensure_tenant(session, "default")
        job, _ = jobs.create_job(session, tenant_id="default", kind=KIND)
        session.commit()
        try:
            assert jobs.claim(session, job.id, 60) is not None
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"  # this transaction only
            session.commit()
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
            session.execute(text("SELECT set_config('synchronous_commit', 'off', false)"))  # even so
            written = session.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar()
            jobs.make_durable(session, job.id)  # commits a write, synchronously
            assert session.execute(text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)"),
                                   {"lsn": written}).scalar()
        finally:
            session.rollback()
            session.execute(text("SELECT set_config('synchronous_commit', 'on', false)"))
            session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job.id})
            session.commit()
