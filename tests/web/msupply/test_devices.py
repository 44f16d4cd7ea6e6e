"""A satellite's pulls and pushes record its device (the site), with its app version and last error."""
from sqlalchemy import text

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


def test_a_sites_pull_lag_follows_what_it_acknowledged(settings, isolated_sessions, broker, redis_client, session,
                                                       tenant):
    """The lag on /metrics is the tenant's counter minus the version below the head of the site's queue,
    moved by each acknowledgement; an empty queue is no lag."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.web.msupply.helpers import put
    from web.app import create_app
    app = create_app(settings.replace(metrics_token="lag-token", sync_wait_seconds=0.3),
                     session_factory=isolated_sessions, celery_app=broker, redis_client=redis_client)
    client = app.test_client()

    def lag():
        text = client.get("/metrics", headers={"Authorization": "Bearer lag-token"}).get_data(as_text=True)
        return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
                if s.labels.get("tenant") == tenant and s.labels.get("dialect") == "msupply"}

    site = make_site(session, tenant=tenant, site_id=4, store_id="STORE_A")
    put(session, tenant, [("item", f"I{i}", {"ID": f"I{i}"}) for i in range(10)])
    h = headers(site.name)
    counter = session.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t"),
                              {"t": tenant}).scalar_one()
    pulled = client.get(f"/sync/v3/queued_records?{route(4, limit=4)}", headers=h).get_json()
    assert lag() == {}  # a pull alone moves no cursor: nothing is confirmed until acknowledged
    assert client.post(f"/sync/v3/acknowledged_records?{route(4)}", headers=h,
                       json={"SyncRecordIDs": [r["SyncID"] for r in pulled]}).status_code == 200
    # four of ten acknowledged: the head is the fifth record, its version is counter - 5
    assert lag() == {"fieldsync_pull_lag_max": 6, "fieldsync_pull_lag_mean": 6.0, "fieldsync_pulling_devices": 1}
    rest = client.get(f"/sync/v3/queued_records?{route(4, limit=100)}", headers=h).get_json()
    client.post(f"/sync/v3/acknowledged_records?{route(4)}", headers=h, json={"SyncRecordIDs": [r["SyncID"] for r in rest]})
    assert lag()["fieldsync_pull_lag_max"] == 0
    session.expire_all()
    assert session.get(Device, (tenant, "msupply", site.name)).last_pulled_version == counter
