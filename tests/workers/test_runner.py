"""How the runner ends a job on a real PostgreSQL: data errors are final (never retried as transient),
failure details carry no driver text or row data, and a job's result can always be stored."""
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
    """run(pipeline) -> (how it ended, the job row)."""
    runtime = Runtime(settings, isolated_sessions)

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
