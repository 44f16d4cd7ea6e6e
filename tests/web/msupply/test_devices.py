"""A satellite's pulls and pushes record its device (the site), with its app version and last error."""
from models.devices import Device
from tests.web.msupply.helpers import headers, make_site, route


def test_site_requests_record_the_device(client, session, tenant):
    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    h = {**headers(site.name), "app-version": "7.14.02"}
    assert client.get(f"/sync/v3/queued_records?{route(4)}", headers=h).status_code == 200
    r = client.post(f"/sync/v3/queued_records?{route(4)}", headers=h, json="not a list")
    assert r.status_code == 400
    session.expire_all()
    device = session.get(Device, (tenant, "msupply", site.name))
    assert (device.pulls, device.pushes, device.records_pushed) == (1, 1, 0)
    assert device.app_version == "7.14.02" and device.last_error.startswith("400 ")
    assert device.last_pull_at is not None and device.last_push_at is not None
