"""DIGIT's SQL: ids that are not ids are simply not found; a sync id must name a sync job."""
import pytest

from models.digit import store as digit
from models.kinds import PROBES
from models.jobs import create_job
from models.users import ensure_tenant


@pytest.mark.parametrize("junk", ["", "nope", "1234", "../etc/passwd", "\x00", "ä" * 40, None, 12])
def test_malformed_ids_are_not_found(db_session, junk):
    assert digit.get_file(db_session, junk) is None
    assert digit.get_upload(db_session, junk) is None
    assert digit.lock_upload(db_session, junk) is None
    assert digit.find_sync(db_session, junk) is None


def test_find_sync_only_finds_sync_jobs(db_session):
    ensure_tenant(db_session, "dg-store")
    probe, _ = create_job(db_session, tenant_id="dg-store", kind=PROBES["ingest"])
    assert digit.find_sync(db_session, str(probe.id)) is None


def test_a_form_version_must_be_newer(db_session):
    ensure_tenant(db_session, "dg-forms")
    body = {"tenantId": "dg-forms", "campaignId": "C", "schema": "household", "version": 2, "elements": []}
    digit.publish_form(db_session, body)
    with pytest.raises(digit.VersionNotNewer) as info:
        digit.publish_form(db_session, {**body, "version": 2})
    assert info.value.latest == 2
    assert [f.version for f in digit.latest_forms(db_session, tenant_id="dg-forms", campaign_id="C")] == [2]
