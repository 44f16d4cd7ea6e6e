"""DIGIT sync end to end through a real worker: upload to the filestore, `_create`, watch the status
(with live progress) until COMPLETED or FAILED."""
import io
import time
import uuid

import pytest

from models.db import session_scope
from tests.conftest import wait_for
from tests.factories import bearer, make_user, token_for
from tests.web.digit.support import envelope, household, household_form, json_document, ndjson, zip_of


@pytest.fixture
def actors(live_app, real_sessions):
    with session_scope(real_sessions) as s:
        writer = make_user(s, role="read-write")
        admin = make_user(s, role="admin")
    return {"headers": bearer(live_app, writer), "token": token_for(live_app, writer),
            "admin": bearer(live_app, admin)}


def _hand_in(client, actors, data: bytes, campaign: str, name="sync.json") -> str:
    resp = client.post("/filestore/v1/files", headers=actors["headers"], content_type="multipart/form-data",
                       data={"tenantId": "default", "file": (io.BytesIO(data), name)})
    assert resp.status_code == 201
    file_id = resp.get_json()["files"][0]["fileStoreId"]
    resp = client.post("/sync/file/v1/_create", json=envelope(
        {"campaignId": campaign, "tenantId": "default", "file": file_id}, actors["token"]))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["sync"]["syncId"]


def _status(client, actors, sync_id, campaign) -> dict:
    resp = client.post("/sync/file/status/v1/_search", json=envelope(
        {"campaignId": campaign, "tenantId": "default", "syncId": sync_id}, actors["token"]))
    assert resp.status_code == 200
    return resp.get_json()["sync"]


def _finished(client, actors, sync_id, campaign):
    def done():
        sync = _status(client, actors, sync_id, campaign)
        return sync if sync["status"] in ("COMPLETED", "FAILED") else None
    return done


def test_sync_file_with_invalid_entities_completes_with_reasons(live_worker, live_app, actors):
    client = live_app.test_client()
    campaign = f"E2E-{uuid.uuid4().hex[:8]}"
    assert client.post("/admin/forms", json=household_form(1, campaign), headers=actors["admin"]).status_code == 201
    households = [household(i) for i in range(200)]
    for i in (10, 110, 150, 199):
        households[i]["firstName"] = "y" * 50
    sync_id = _hand_in(client, actors, json_document(households), campaign)
    sync = wait_for(_finished(client, actors, sync_id, campaign), 60, message=live_worker.tail())
    assert sync["status"] == "COMPLETED"
    assert sync["counts"] == {"accepted": 196, "duplicate": 0, "rejected": 4}
    assert sync["progress"] == {"done": 200, "total": 200, "percent": 100.0}
    assert [(e["position"], e["code"], e["field"]) for e in sync["errors"]] == [
        (10, "TOO_LONG", "firstName"), (110, "TOO_LONG", "firstName"), (150, "TOO_LONG", "firstName"),
        (199, "TOO_LONG", "firstName")]
    assert sync["errors"][0]["clientReferenceId"] == "hh-0000010"
    # The same file again is the same sync, already finished.
    assert _hand_in(client, actors, json_document(households), campaign) == sync_id


def test_progress_moves_while_a_large_file_runs(live_worker, live_app, actors):
    client = live_app.test_client()
    campaign = f"BIG-{uuid.uuid4().hex[:8]}"
    total = 40_000
    sync_id = _hand_in(client, actors, ndjson([("household", household(i)) for i in range(total)]), campaign,
                       name="big.ndjson")
    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sync = _status(client, actors, sync_id, campaign)
        seen.append((sync["status"], sync["progress"]["done"], sync["progress"]["total"]))
        if sync["status"] in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.05)
    assert seen[-1] == ("COMPLETED", total, total), live_worker.tail()
    partial = {done for status, done, t in seen if status == "IN_PROGRESS" and t == total and 0 < done < total}
    assert len(partial) >= 2, seen[:20]
    dones = [done for _, done, _ in seen]
    assert dones == sorted(dones)  # never goes backwards


def test_unsafe_zip_fails_with_a_clear_reason_and_writes_nothing_outside(live_worker, live_app, actors, settings):
    client = live_app.test_client()
    campaign = f"ZIP-{uuid.uuid4().hex[:8]}"
    canary = f"canary-{uuid.uuid4().hex[:8]}.json"
    data = zip_of({f"../../{canary}": json_document([household(1)]),
                   f"../{canary}": json_document([household(2)])})
    sync_id = _hand_in(client, actors, data, campaign, name="bundle.zip")
    sync = wait_for(_finished(client, actors, sync_id, campaign), 60, message=live_worker.tail())
    assert sync["status"] == "FAILED"
    assert sync["failure"]["code"] == "archive_rejected" and ".." in sync["failure"]["reason"]
    data_dir = settings.data_dir.resolve()
    assert list(data_dir.rglob(canary)) == []  # nothing extracted anywhere under the data directory
    for directory in (data_dir.parent, data_dir.parent.parent, settings.blob_dir.parent):
        assert not (directory / canary).exists()


def test_zip_bomb_and_truncated_file_fail(live_worker, live_app, actors):
    client = live_app.test_client()
    campaign = f"BAD-{uuid.uuid4().hex[:8]}"
    bomb = zip_of({"zeros.json": b" " * (30 << 20)})
    truncated = json_document([household(i) for i in range(100)])[:-37]
    ids = [_hand_in(client, actors, bomb, campaign, name="bomb.zip"),
           _hand_in(client, actors, truncated, campaign)]
    results = [wait_for(_finished(client, actors, i, campaign), 60, message=live_worker.tail()) for i in ids]
    assert [(r["status"], r["failure"]["code"]) for r in results] == [
        ("FAILED", "archive_rejected"), ("FAILED", "truncated_file")]
    assert "bomb" in results[0]["failure"]["reason"]
