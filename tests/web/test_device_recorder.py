"""A server's device activity goes through a writer thread (web.devices.Recorder): every request is
recorded, in arrival order, without the client waiting; a full queue falls back to recording inline; a
failed write costs nothing else and the thread carries on."""
from __future__ import annotations

import threading
import uuid

from flask import Flask

from models.devices import Device
from web import db, devices


def _device(client: str, activity: str, **extra) -> dict:
    return {"dialect": "synkronus", "tenant_id": "t-rec", "client_id": client, "activity": activity,
            "records": extra.get("records", 0), "app_version": extra.get("app_version"),
            "pulled_version": extra.get("pulled_version")}


def _get(real_sessions, client):
    session = real_sessions()
    try:
        return session.get(Device, ("t-rec", "synkronus", client))
    finally:
        session.close()


def test_requests_are_recorded_in_order_and_add_up(real_sessions):
    client = "rec-" + uuid.uuid4().hex[:8]
    recorder = devices.Recorder(real_sessions)
    assert recorder.submit(_device(client, "push", records=7, app_version="1.0"), None)
    for version in (10, 20, 30):
        assert recorder.submit(_device(client, "pull", pulled_version=version), None)
    assert recorder.submit(_device(client, "push"), "409 transmission_conflict")
    recorder.flush()
    device = _get(real_sessions, client)
    assert (device.pushes, device.pulls, device.records_pushed) == (2, 3, 7)
    assert device.last_pulled_version == 30 and device.app_version == "1.0"
    assert device.last_error == "409 transmission_conflict"


def test_a_burst_of_requests_is_one_transaction_with_one_upsert_per_device(real_sessions):
    opened = {"sessions": 0}

    def counting_sessions():
        opened["sessions"] += 1
        return real_sessions()

    recorder = devices.Recorder(counting_sessions)
    a, b = "rec-" + uuid.uuid4().hex[:8], "rec-" + uuid.uuid4().hex[:8]
    for page in range(1, 51):  # two devices pulling page after page, a third of them also pushing
        assert recorder.submit(_device(a, "pull", pulled_version=page * 10), None)
        if page % 3 == 0:
            assert recorder.submit(_device(b, "push", records=5, app_version=f"2.{page}"), None)
    recorder.submit(_device(b, "push", records=9), "500 job_failed")
    recorder.flush()
    assert opened["sessions"] == 1
    first, second = _get(real_sessions, a), _get(real_sessions, b)
    assert (first.pulls, first.pushes, first.last_pulled_version) == (50, 0, 500)
    assert (second.pushes, second.pulls, second.records_pushed) == (17, 0, 16 * 5 + 9)
    assert second.app_version == "2.48" and second.last_error == "500 job_failed"
    assert first.last_error is None


def test_a_full_queue_says_so(real_sessions):
    release = threading.Event()

    def slow_sessions():
        release.wait(10)
        return real_sessions()

    recorder = devices.Recorder(slow_sessions)
    recorder.QUEUE_SIZE = 1
    recorder.LINGER = 0  # the writer takes one and blocks on the database at once
    client = "rec-" + uuid.uuid4().hex[:8]
    accepted = [recorder.submit(_device(client, "pull"), None) for _ in range(5)]
    assert accepted[0] and not all(accepted)  # the writer holds one, the queue one more, then no room
    release.set()
    recorder.flush()
    assert _get(real_sessions, client).pulls == sum(accepted)


def test_a_failed_write_is_dropped_and_the_writer_carries_on(real_sessions):
    calls = {"n": 0}

    def flaky_sessions():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database away")
        return real_sessions()

    recorder = devices.Recorder(flaky_sessions)
    lost, kept = "rec-" + uuid.uuid4().hex[:8], "rec-" + uuid.uuid4().hex[:8]
    recorder.submit(_device(lost, "pull"), None)
    recorder.flush()
    recorder.submit(_device(kept, "pull"), None)
    recorder.flush()
    assert _get(real_sessions, lost) is None
    assert _get(real_sessions, kept).pulls == 1


def test_an_app_with_write_behind_records_after_answering(real_sessions):
    app = Flask("recorder-test")
    db.install(app, real_sessions)
    devices.install(app, write_behind=True)
    client = "rec-" + uuid.uuid4().hex[:8]

    @app.post("/pull")
    def pull():
        devices.seen(dialect="synkronus", tenant_id="t-rec", client_id=client, activity="pull", pulled_version=5)
        return {"ok": True}

    @app.post("/refused")
    def refused():
        devices.seen(dialect="synkronus", tenant_id="t-rec", client_id=client, activity="push", records=3)
        return {"error": "no"}, 409

    http = app.test_client()
    assert http.post("/pull").status_code == 200
    assert http.post("/refused").status_code == 409
    with app.app_context():
        devices.recorder().flush()
    device = _get(real_sessions, client)
    assert (device.pulls, device.pushes, device.records_pushed) == (1, 1, 0)
    assert device.last_pulled_version == 5 and device.last_error == "409 error"
