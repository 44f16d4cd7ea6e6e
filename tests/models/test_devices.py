"""models.devices.touch: one upsert per request, adding up per device."""
from __future__ import annotations

from models.devices import Device, touch


def _get(session, client):
    session.expire_all()
    return session.get(Device, ("t-a", "synkronus", client))


def test_touch_creates_then_adds_up(db_session):
    touch(db_session, tenant_id="t-a", dialect="synkronus", client_id="phone-1", activity="push", records=7,
          app_version="1.2.0")
    touch(db_session, tenant_id="t-a", dialect="synkronus", client_id="phone-1", activity="push", records=3)
    touch(db_session, tenant_id="t-a", dialect="synkronus", client_id="phone-1", activity="pull", pulled_version=42)
    device = _get(db_session, "phone-1")
    assert (device.pushes, device.pulls, device.records_pushed) == (2, 1, 10)
    assert device.app_version == "1.2.0" and device.last_pulled_version == 42
    assert device.last_push_at is not None and device.last_pull_at is not None and device.last_error is None
    touch(db_session, tenant_id="t-a", dialect="synkronus", client_id="phone-1", activity="push",
          error="409 transmission_conflict")
    device = _get(db_session, "phone-1")
    assert device.last_error == "409 transmission_conflict" and device.last_error_at is not None
    assert device.last_pulled_version == 42


def test_touch_keeps_text_storable(db_session):
    touch(db_session, tenant_id="t-a", dialect="synkronus", client_id="a\x00b" + "x" * 400, activity="pull",
          app_version="v\x00" + "9" * 300)
    device = db_session.query(Device).filter(Device.client_id.like("ab%")).one()
    assert len(device.client_id) == 256 and len(device.app_version) == 128


def test_a_lazy_touch_commits_without_waiting_for_the_flush(db_session):
    from sqlalchemy import text
    touch(db_session, tenant_id="t-a", dialect="digit", client_id="u1", activity="push")
    assert db_session.execute(text("SHOW synchronous_commit")).scalar() == "on"
    touch(db_session, tenant_id="t-a", dialect="digit", client_id="u1", activity="push", lazy_commit=True)
    assert db_session.execute(text("SHOW synchronous_commit")).scalar() == "off"
