"""The digit.sync_file pipeline run in-process through the real runner (claim, apply, finish) against
committed sessions: validation against forms, per-entity errors, updates by clientReferenceId, failures."""
import uuid

import pytest
from sqlalchemy import select, text

from models.digit import store as digit
from models.blobs import BlobStore
from models.db import session_scope
from models.records import Record
from models.tables import Job, JobRecordError
from models.users import ensure_tenant
from tests.conftest import RecordingBroker
from tests.web.digit.support import (
    household, household_form, individual, individual_form, json_document, ndjson, zip_of,
)
from workers.api import submit_job
from workers.digit.forms import normalise_form
from workers.runner import run_job
from workers.runtime import Runtime
from models.digit import SYNC_FILE


@pytest.fixture
def runtime(settings, real_sessions):
    return Runtime(settings, real_sessions)


@pytest.fixture
def campaign():
    return f"CAMP-{uuid.uuid4().hex[:8]}"


def _submit(runtime, data: bytes, campaign: str, forms=()) -> uuid.UUID:
    sha, _ = BlobStore(runtime.settings.blob_dir).put_bytes(data)
    with session_scope(runtime.sessions()) as s:
        ensure_tenant(s, "default")
        for form in forms:
            digit.publish_form(s, normalise_form(form))
        versions = {r.schema: r.version for r in digit.latest_forms(s, tenant_id="default", campaign_id=campaign)}
        job, _ = submit_job(s, RecordingBroker(), tenant_id="default", kind=SYNC_FILE,
                            params={"campaignId": campaign, "file": "f", "forms": versions},
                            idempotency_key=f"{campaign}:{sha}", payload_hash=sha, blob_sha256=sha)
        return job.id


def _job(runtime, job_id) -> Job:
    with session_scope(runtime.sessions()) as s:
        return s.get(Job, job_id)


def _records(runtime, campaign):
    with session_scope(runtime.sessions()) as s:
        return {r.record_key: r for r in s.execute(select(Record).where(
            Record.namespace == "digit", Record.record_key.like(f"{campaign}:%"))).scalars()}


def test_two_percent_invalid_entities_are_reported_and_the_rest_applied(runtime, campaign):
    households = [household(i) for i in range(1000)]
    broken = {}
    for n, i in enumerate(range(7, 1000, 50)):  # 20 of 1000
        kind = n % 5
        if kind == 0:
            households[i]["firstName"] = "x" * 30
            broken[i] = ("TOO_LONG", "firstName")
        elif kind == 1:
            del households[i]["firstName"]
            broken[i] = ("REQUIRED", "firstName")
        elif kind == 2:
            households[i]["memberCount"] = "three"
            broken[i] = ("INVALID_TYPE", "memberCount")
        elif kind == 3:
            households[i]["mobileNumber"] = "not-a-number"
            broken[i] = ("PATTERN_MISMATCH", "mobileNumber")
        else:
            households[i]["gender"] = "X"
            broken[i] = ("NOT_ALLOWED", "gender")
    individuals = [individual(i) for i in range(100)]
    data = json_document(households, individuals)
    job_id = _submit(runtime, data, campaign, forms=[household_form(1, campaign), individual_form(1, campaign)])
    assert run_job(runtime, job_id) == "completed"
    job = _job(runtime, job_id)
    assert job.status == "COMPLETED"
    assert job.counts["accepted"] == 980 + 100 and job.counts["rejected"] == 20
    assert job.progress_done == job.progress_total == 1100
    with session_scope(runtime.sessions()) as s:
        errors = s.execute(select(JobRecordError).where(JobRecordError.job_id == job_id)
                           .order_by(JobRecordError.position)).scalars().all()
    assert {e.position: (e.code, e.path) for e in errors} == broken
    assert all(e.record_id == f"hh-{e.position:07d}" and e.message for e in errors)
    records = _records(runtime, campaign)
    assert len(records) == 1080
    assert f"{campaign}:household:hh-0000007" not in records
    rec = records[f"{campaign}:household:hh-0000001"]
    assert rec.record_type == "household" and rec.data["firstName"] == "Name1" and rec.schema_version == "1"


def test_later_file_with_the_same_offline_id_updates_the_record(runtime, campaign):
    first = _submit(runtime, ndjson([("household", household(1)), ("household", household(2))]), campaign)
    assert run_job(runtime, first) == "completed"
    before = _records(runtime, campaign)[f"{campaign}:household:hh-0000001"]
    changed = household(1, firstName="Renamed")
    second = _submit(runtime, ndjson([("household", changed), ("household", household(2))]), campaign)
    assert run_job(runtime, second) == "completed"
    job = _job(runtime, second)
    assert job.counts["accepted"] == 1 and job.counts["duplicate"] == 1
    after = _records(runtime, campaign)
    assert len(after) == 2
    assert after[f"{campaign}:household:hh-0000001"].data["firstName"] == "Renamed"
    assert after[f"{campaign}:household:hh-0000001"].version > before.version


def test_zip_of_json_and_ndjson_is_applied(runtime, campaign):
    data = zip_of({"households.json": json_document([household(i) for i in range(30)]),
                   "people.ndjson": ndjson([("individual", individual(i)) for i in range(20)])})
    job_id = _submit(runtime, data, campaign)
    assert run_job(runtime, job_id) == "completed"
    job = _job(runtime, job_id)
    assert job.counts["accepted"] == 50 and job.result["parts"][1]["member"] == "people.ndjson"
    assert len(_records(runtime, campaign)) == 50


def test_unknown_schema_and_missing_offline_id_are_rejected(runtime, campaign):
    data = ndjson([("household", household(1)), ("stock", {"clientReferenceId": "s1"}),
                   ("household", {"firstName": "NoId"})]) + b'{"oops": 1}\n'
    job_id = _submit(runtime, data, campaign, forms=[household_form(1, campaign)])
    assert run_job(runtime, job_id) == "completed"
    with session_scope(runtime.sessions()) as s:
        codes = [e.code for e in s.execute(select(JobRecordError).where(JobRecordError.job_id == job_id)
                                           .order_by(JobRecordError.position)).scalars()]
    assert codes == ["UNKNOWN_SCHEMA", "MISSING_CLIENT_REFERENCE_ID", "BAD_LINE"]


@pytest.mark.parametrize("data, code", [
    (json_document([household(i) for i in range(50)])[:-100], "truncated_file"),
    (b'{"entities": {"household": [{"clientReferenceId": "\xff"}]}}', "invalid_utf8"),
    (b"this is not json at all", "invalid_format"),
    (zip_of({"../escape.json": json_document([household(1)])}), "archive_rejected"),
])
def test_broken_files_fail_before_anything_is_applied(runtime, campaign, data, code):
    job_id = _submit(runtime, data, campaign)
    assert run_job(runtime, job_id) == "failed"
    job = _job(runtime, job_id)
    assert job.status == "FAILED" and job.error_code == code and job.error_detail
    assert _records(runtime, campaign) == {}


def test_missing_blob_fails_clearly(runtime, campaign):
    job_id = _submit(runtime, b'{"entities": {}}', campaign)
    with session_scope(runtime.sessions()) as s:
        s.execute(text("UPDATE jobs SET blob_sha256 = :sha WHERE id = :id"), {"sha": "0" * 64, "id": job_id})
    assert run_job(runtime, job_id) == "failed"
    assert _job(runtime, job_id).error_code == "file_missing"


# --- reading ahead (the file is read and checked in a thread while the chunk before is applied) -------

def test_read_ahead_hands_over_every_item_in_order_and_restores_the_switch_interval():
    import sys
    from workers.digit.jobs import AHEAD_BATCH, read_ahead
    before = sys.getswitchinterval()
    count = AHEAD_BATCH * 7 + 3
    with read_ahead(iter(range(count))) as ahead:
        assert list(ahead) == list(range(count))
    assert sys.getswitchinterval() == before


def test_a_reader_failure_is_raised_in_the_caller_after_the_items_before_it():
    from workers.digit.jobs import AHEAD_BATCH, read_ahead
    from workers.errors import JobFailed

    def items():
        yield from range(AHEAD_BATCH + 5)
        raise JobFailed("invalid_json", "line 9 is not valid JSON")

    got = []
    with pytest.raises(JobFailed) as raised:
        with read_ahead(items()) as ahead:
            for item in ahead:
                got.append(item)
    assert raised.value.code == "invalid_json"
    assert got == list(range(AHEAD_BATCH + 5))


def test_leaving_early_stops_the_reader_and_closes_what_it_reads():
    import threading
    from workers.digit.jobs import read_ahead
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    with pytest.raises(RuntimeError):
        with read_ahead(endless()) as ahead:
            for item in ahead:
                if item == 10:
                    raise RuntimeError("the apply failed")
    assert closed.wait(5)
    assert not any(t.name == "digit-read-ahead" for t in threading.enumerate())


def test_a_file_longer_than_the_read_ahead_is_applied_whole_in_order(runtime, campaign):
    from workers.digit.jobs import AHEAD_BATCH, AHEAD_BATCHES
    n = AHEAD_BATCH * (AHEAD_BATCHES + 3) + 7
    households = [household(i) for i in range(n)]
    households[n - 2]["firstName"] = "x" * 30  # the form's max is 20
    job_id = _submit(runtime, json_document(households, []), campaign, forms=[household_form(1, campaign)])
    assert run_job(runtime, job_id) == "completed"
    job = _job(runtime, job_id)
    assert job.counts["accepted"] == n - 1 and job.counts["rejected"] == 1
    records = _records(runtime, campaign)
    assert len(records) == n - 1
    versions = [records[f"{campaign}:household:{h['clientReferenceId']}"].version
                for i, h in enumerate(households) if i != n - 2]
    assert versions == sorted(versions)  # in file order
    with session_scope(runtime.sessions()) as s:
        errors = list(s.execute(select(JobRecordError).where(JobRecordError.job_id == job_id)).scalars())
    assert [(e.position, e.code) for e in errors] == [(n - 2, "TOO_LONG")]


def test_the_collector_is_eased_only_while_a_file_is_applied(runtime, campaign):
    import gc
    before = gc.get_threshold()
    job_id = _submit(runtime, ndjson([("household", household(i)) for i in range(30)]), campaign)
    assert run_job(runtime, job_id) == "completed"
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
