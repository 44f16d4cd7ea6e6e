"""Property: random pushes (overlapping ids, updates, deletes, replays) and pulls from random cursors
always converge to a simple model of the last write per id."""
import uuid

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from models.db import session_scope
from tests.factories import bearer, make_user

ids = st.sampled_from([f"k{i}" for i in range(8)])
change = st.tuples(ids, st.integers(0, 3), st.booleans())
batch = st.lists(change, min_size=0, max_size=6)


@hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(batch, min_size=1, max_size=5), replay=st.booleans(), cursor_pick=st.integers(0, 10))
def test_pushes_and_pulls_converge(live_worker, live_app, real_sessions, batches, replay, cursor_pick):
    with session_scope(real_sessions) as s:
        user = make_user(s, tenant=f"prop-{uuid.uuid4().hex[:8]}")
    headers = bearer(live_app, user)
    client = live_app.test_client()
    model = {}
    seen_versions = []
    for number, changes in enumerate(batches):
        records = [{"observation_id": key, "form_type": "f", "form_version": "1", "data": {"v": value},
                    "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "deleted": deleted}
                   for key, value, deleted in changes]
        tx = f"tx-{number}"
        r = client.post("/sync/push", json={"transmission_id": tx, "client_id": "p", "records": records}, headers=headers)
        assert r.status_code == 200, r.data
        for key, value, deleted in changes:
            model[key] = ({"v": value}, deleted)
        if replay:
            again = client.post("/sync/push", json={"transmission_id": tx, "client_id": "p", "records": records},
                                headers=headers)
            assert again.data == r.data
        page = client.post("/sync/pull?limit=3", json={"client_id": "q", "since": {"version": 0}}, headers=headers)
        seen_versions.append(page.get_json()["current_version"])

    def full_pull(since):
        state, cursor = {}, since
        while True:
            body = client.post("/sync/pull?limit=3", json={"client_id": "q", "since": {"version": cursor}},
                               headers=headers).get_json()
            for rec in body["records"]:
                assert rec["version"] > cursor
                state[rec["observation_id"]] = (rec["data"], rec["deleted"])
            if not body["has_more"]:
                return state, body["current_version"]
            cursor = body["change_cutoff"]

    state, current = full_pull(0)
    assert state == model
    # a client that resumes from any earlier cursor ends with the same state
    earlier = sorted(set(seen_versions))[cursor_pick % len(set(seen_versions))]
    partial, _ = full_pull(earlier)
    resumed = {**{k: v for k, v in state.items() if k not in partial}, **partial}
    assert resumed == model
