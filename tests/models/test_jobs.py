"""The job lifecycle on a real PostgreSQL (savepoint-isolated)."""

from sqlalchemy import text

from models import jobs
from models.tables import JobRecordError
from models.users import ensure_tenant
from models.kinds import PROBES


def _new(session, **kw):
    ensure_tenant(session, "default")
    job, created = jobs.create_job(session, tenant_id="default", kind=PROBES["ingest"], **kw)
    session.flush()
    return job, created


def test_idempotency_key_returns_the_same_job(db_session):
    first, created1 = _new(db_session, idempotency_key="tx-1", payload_hash="a" * 64)
    second, created2 = _new(db_session, idempotency_key="tx-1", payload_hash="a" * 64)
    assert created1 and not created2
    assert first.id == second.id


def test_claim_is_exclusive_and_counts_attempts(db_session):
    job, _ = _new(db_session)
    claimed = jobs.claim(db_session, job.id, lease_seconds=60)
    assert claimed is not None and claimed.attempts == 1
    assert jobs.claim(db_session, job.id, lease_seconds=60) is None  # a duplicate delivery
    db_session.refresh(job)
    assert job.status == "RUNNING" and job.lease_until is not None


def test_a_payload_comes_back_from_the_claim_byte_for_byte_text_or_not(db_session):
    text_payload = '{"records": [{"name": "Ünïcode \\u0000 ✓"}]}'.encode()
    binary = b"\x1f\x8b\x00\xff not text"
    stored = {}
    for name, payload in (("text", text_payload), ("binary", binary)):
        job, _ = _new(db_session, payload=payload)
        stored[name] = db_session.execute(text("SELECT payload IS NOT NULL, payload_text IS NOT NULL FROM jobs "
                                               "WHERE id = :id"), {"id": job.id}).one()
        assert jobs.claim(db_session, job.id, lease_seconds=60).payload == payload
        assert jobs.finish(db_session, job.id)
        assert db_session.execute(text("SELECT payload IS NULL AND payload_text IS NULL FROM jobs WHERE id = :id"),
                                  {"id": job.id}).scalar_one()
    # UTF-8 travels as text, anything else (here a NUL and bytes that are not UTF-8) as bytea
    assert stored == {"text": (False, True), "binary": (True, False)}


def test_expired_lease_can_be_reclaimed(db_session):
    job, _ = _new(db_session)
    jobs.claim(db_session, job.id, lease_seconds=60)
    db_session.execute(text("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = :id"),
                       {"id": job.id})
    again = jobs.claim(db_session, job.id, lease_seconds=60)
    assert again is not None and again.attempts == 2


def test_attempts_cap_fails_a_poison_job(db_session):
    job, _ = _new(db_session, max_attempts=2)
    for _ in range(2):
        assert jobs.claim(db_session, job.id, lease_seconds=60) is not None
        db_session.execute(text("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = :id"),
                           {"id": job.id})
    assert jobs.claim(db_session, job.id, lease_seconds=60) is None
    db_session.refresh(job)
    assert job.status == "FAILED" and job.error_code == "max_attempts_exceeded"


def test_progress_finish_and_terminal_states_are_final(db_session):
    job, _ = _new(db_session)
    jobs.claim(db_session, job.id, lease_seconds=60)
    assert jobs.progress(db_session, job.id, done=5, total=10, checkpoint=5, counts={"accepted": 5}, lease_seconds=60)
    assert jobs.finish(db_session, job.id, counts={"accepted": 10})
    db_session.refresh(job)
    assert job.status == "COMPLETED" and job.counts == {"accepted": 10} and job.progress_done == 10
    assert not jobs.progress(db_session, job.id, done=1)
    assert not jobs.fail(db_session, job.id, "x", "y")
    assert jobs.claim(db_session, job.id, lease_seconds=60) is None
    db_session.refresh(job)
    assert job.status == "COMPLETED"


def test_sweep_requeues_stale_and_reclaims_expired(db_session):
    stale, _ = _new(db_session)
    db_session.execute(text("UPDATE jobs SET enqueued_at = now() - interval '10 minutes' WHERE id = :id"),
                       {"id": stale.id})
    running, _ = _new(db_session)
    jobs.claim(db_session, running.id, lease_seconds=60)
    db_session.execute(text("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = :id"),
                       {"id": running.id})
    done, _ = _new(db_session)
    jobs.claim(db_session, done.id, lease_seconds=60)
    jobs.finish(db_session, done.id)
    found = jobs.sweep(db_session, requeue_after_seconds=60)
    requeued = {job_id for job_id, _ in found["requeue"]}
    assert stale.id in requeued
    assert running.id in found["reclaimed"] and running.id in requeued
    assert done.id not in requeued
    db_session.refresh(running)
    assert running.status == "QUEUED"


def test_record_errors_are_idempotent(db_session):
    job, _ = _new(db_session)
    errs = [{"position": 3, "record_id": "r3", "code": "invalid_type", "message": "data must be an object",
             "path": "records[3].data", "record": '{"x":\u0000}'}]
    jobs.record_errors(db_session, job.id, errs)
    jobs.record_errors(db_session, job.id, errs)
    rows = db_session.query(JobRecordError).filter_by(job_id=job.id).all()
    assert len(rows) == 1 and rows[0].code == "invalid_type" and "\x00" not in rows[0].record


def test_a_job_ending_with_unstorable_values_is_still_stored(db_session):
    surrogate = "\ud800"
    job, _ = _new(db_session)
    jobs.claim(db_session, job.id, lease_seconds=60)
    jobs.record_errors(db_session, job.id, [
        {"position": 0, "record_id": "r" + surrogate + "\x00", "code": "lone_surrogate",
         "message": "m" + surrogate, "path": "k" + surrogate, "record": '{"a": "' + surrogate + '"}'}])
    result = {"nul": "a\x00", "s": surrogate, surrogate: [2 ** 70, float("nan")], "deep": [[[[1]]]]}
    assert jobs.finish(db_session, job.id, counts={"accepted": 1, "x\x00": 1}, result=result)
    db_session.refresh(job)
    assert job.status == "COMPLETED" and job.result["nul"] == "a\\u0000" and job.result["s"] == "\\ud800"
    assert job.result["\\ud800"] == [str(2 ** 70), "nan"] and job.result["deep"] == [[[[1]]]]
    error = jobs.errors_of(db_session, job.id, severity="error", limit=10)[0]
    assert error.record_id == "r\\ud800\\u0000" and error.message == "m\\ud800"
    assert jobs.count_errors(db_session, job.id, severity="error") == 1
    assert jobs.count_errors(db_session, job.id, severity="warning") == 0


def test_a_failure_detail_is_always_stored(db_session):
    job, _ = _new(db_session)
    jobs.claim(db_session, job.id, lease_seconds=60)
    assert jobs.fail(db_session, job.id, "x", "bad \x00 \ud800")
    db_session.refresh(job)
    assert job.status == "FAILED" and job.error_detail == "bad \\u0000 \\ud800"
