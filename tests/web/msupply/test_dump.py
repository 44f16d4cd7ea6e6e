"""initial_dump: the view clears the queue and starts one job; the job refills it with the site's
share (full, or the mobile subset); a second request while one runs starts nothing."""
import pytest

from models.tables import Job
from tests.web.msupply.helpers import headers, make_site, put, route
from models.msupply import INITIAL_DUMP


@pytest.fixture
def runtime(settings, isolated_sessions):
    from workers.runtime import Runtime
    return Runtime(settings, isolated_sessions)


def _dump_jobs(session, tenant):
    session.expire_all()
    return session.query(Job).filter(Job.tenant_id == tenant, Job.kind == "msupply.initial_dump").all()


def _seed(session, tenant):
    put(session, tenant, [
        ("store", "STORE_A", {"ID": "STORE_A", "name": "A"}),
        ("store", "STORE_B", {"ID": "STORE_B", "name": "B"}),
        ("item", "I1", {"ID": "I1"}),
        ("name", "PATIENT_A", {"ID": "PATIENT_A"}),
        ("name", "PATIENT_B", {"ID": "PATIENT_B"}),
        ("name_store_join", "J1", {"ID": "J1", "name_ID": "PATIENT_A", "store_ID": "STORE_A"}),
        ("transact", "T_A", {"ID": "T_A", "store_ID": "STORE_A"}),
        ("transact", "T_B", {"ID": "T_B", "store_ID": "STORE_B"}),
        ("report", "R1", {"ID": "R1"}),
        ("transact", "T_GONE", {"ID": "T_GONE", "store_ID": "STORE_A"}),
    ])
    put(session, tenant, [("transact", "T_GONE", None, "STORE_A")])


def _ids(client, site):
    rows = client.get(f"/sync/v3/queued_records?{route(site.site_id, limit=100)}", headers=headers(site.name)).get_json()
    return sorted(r["RecordID"] for r in rows)


def test_full_dump_regenerates_the_queue_with_everything_the_site_may_see(client, session, tenant, runtime):
    from workers.runner import run_job
    _seed(session, tenant)
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    put(session, tenant, [("item", "I2", {"ID": "I2"})])  # queued by fan-out before the dump
    resp = client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(site.name))
    assert resp.status_code == 200 and resp.get_json() == {}
    assert client.get(f"/sync/v3/queued_records/count?{route(4)}", headers=headers(site.name)).get_json() == {
        "NumRecords": 0}
    (job,) = _dump_jobs(session, tenant)
    assert job.queue == "exports" and job.params["full"] is True
    assert run_job(runtime, job.id) == "completed"
    assert _ids(client, site) == ["I1", "I2", "J1", "PATIENT_A", "PATIENT_B", "R1", "STORE_A", "T_A"]


def test_mobile_dump_is_the_configured_subset(client, session, tenant, runtime):
    from workers.runner import run_job
    _seed(session, tenant)
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    client.get(f"/sync/v3/initial_dump?{route(4)}", headers=headers(site.name))
    run_job(runtime, _dump_jobs(session, tenant)[0].id)
    # no report (not a mobile type), only the names joined to the store
    assert _ids(client, site) == ["I1", "J1", "PATIENT_A", "STORE_A", "T_A"]


def test_a_second_dump_while_one_is_open_starts_nothing(client, broker, session, tenant, runtime):
    from workers.runner import run_job
    _seed(session, tenant)
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    for _ in range(3):
        assert client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(site.name)).get_json() == {}
    (job,) = _dump_jobs(session, tenant)
    assert len(broker.sent) == 1
    run_job(runtime, job.id)
    assert len(_ids(client, site)) == 7
    client.get(f"/sync/v3/initial_dump?{route(4, type='full')}", headers=headers(site.name))
    assert len(_dump_jobs(session, tenant)) == 2  # finished: a new request starts a new dump


def test_dump_in_small_batches_queues_the_same_set(session, tenant, runtime, settings):
    from models import jobs
    from models.msupply import store as msupply
    from workers.runner import run_job
    _seed(session, tenant)
    make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    from models.engine import current_version
    job, _ = jobs.create_job(session, tenant_id=tenant, kind=INITIAL_DUMP,
                             params={"site_id": 4, "full": True, "upto": current_version(session, tenant), "batch": 3})
    session.commit()
    assert run_job(runtime, job.id) == "completed"
    session.expire_all()
    done = session.get(Job, job.id)
    assert done.result["queued"] == 7 and done.counts["queued"] == 7
    assert msupply.queue_count(session, tenant, 4) == 7
