"""mSupply sync v1–v4 (v3 here): satellites authenticate with HTTP Basic (site name, SHA-256 hex of the
password) and are bound to a device by `msupply-site-uuid`; push = POST /sync/v3/queued_records (answered
`{}` after a bounded wait for the job; a resend with the same SyncIDs is the same job); read back = a
second site's outgoing queue (GET /sync/v3/queued_records, not acknowledged). Records of type `item`
(master data) fan out to every site of the tenant. Per-record errors are not in mSupply's answer; fieldsync
reports them at GET /jobs/<id>/errors. Errors on /sync/… are exactly `{"error": "<text>"}`; the site
admin API (/admin/sites, fieldsync's own) answers `{"error": <code>, "message": <text>}`.

Satellites have no roles: the "wrong role" case is a tenant user who is not an admin registering a site
(POST /admin/sites), the only role-gated call of the dialect."""
from __future__ import annotations

import base64
import hashlib
import time

from tests.contract.adapters.base import (
    HOLE, TEXTUAL, Creds, DialectAdapter, Env, ForeignIdCase, HostileTarget, Principal, Reported, Req, STUCK_HINT,
    all_but, chunked, json_body, json_req, make_user, new_id, query_req, show, texts_only,
)

SITE_A, PEER_A, SITE_B = 4, 5, 6
UNKNOWN_SITE = 4242


def _route(site_id: int, **extra) -> str:
    params = {"from_site": site_id, "to_site": 1, **extra}
    return "&".join(f"{k}={v}" for k, v in params.items())


def _site(env: Env, admin: Principal, tenant: str, site_id: int, store: str) -> Principal:
    name, password = new_id(f"CT-{site_id}-"), new_id("pw-")
    r = env.client.post("/admin/sites", headers=admin.headers,
                        json={"id": site_id, "name": name, "password": password, "store_id": store,
                              "name_id": f"NAME-{store}"})
    assert r.status_code == 201, show(r)
    secret = hashlib.sha256(password.encode()).hexdigest()
    basic = base64.b64encode(f"{name}:{secret}".encode()).decode()
    return Principal(name=name, headers={"Authorization": f"Basic {basic}", "msupply-site-uuid": f"dev-{name}"},
                     extra={"site_id": site_id, "tenant": tenant, "store": store})


class MsupplyAdapter(DialectAdapter):
    name = "msupply"
    namespace = "msupply"
    not_found_status = 404
    forbidden_status = 403
    push_ok_statuses = (200,)

    def setup(self, env: Env, tenant_a: str, tenant_b: str) -> Creds:
        admin_a = make_user(env, tenant_a, "admin")
        admin_b = make_user(env, tenant_b, "admin")
        writer = _site(env, admin_a, tenant_a, SITE_A, "STORE-A")
        peer = _site(env, admin_a, tenant_a, PEER_A, "STORE-A2")
        other = _site(env, admin_b, tenant_b, SITE_B, "STORE-B")
        return Creds(tenant_a=tenant_a, tenant_b=tenant_b, writer=writer,
                     reader=make_user(env, tenant_a, "read-write"), other_writer=other,
                     extra={"admin_a": admin_a, "admin_b": admin_b, "peer": peer})

    # records
    def good_record(self, i: int) -> dict:
        rid = f"CT-ITEM-{i:04d}"
        return {"SyncID": f"CT-SYNC-{i:04d}", "RecordType": "item", "RecordID": rid, "SyncType": "I",
                "StoreID": "STORE-A", "Data": {"ID": rid, "code": f"C{i}", "item_name": f"item {i}"}}

    def bad_record(self) -> dict:
        # `Data` is required for an insert and must be an object
        return {"SyncID": "CT-SYNC-BAD", "RecordType": "item", "RecordID": "CT-ITEM-BAD", "SyncType": "I",
                "StoreID": "STORE-A", "Data": "not an object"}

    def key_of(self, record) -> str:
        return f"{record['RecordType']}:{record['RecordID']}"

    def id_of(self, record) -> str:
        return record["RecordID"]

    # hand-in
    def _push_path(self, site: Principal) -> str:
        return f"/sync/v3/queued_records?{_route(site.extra['site_id'])}"

    def push(self, env, creds, records, batch_id):
        # mSupply has no batch id: a batch is identified by its SyncIDs
        return env.client.post(self._push_path(creds.writer), headers=creds.writer.headers, json=records)

    def replay_answer(self, response):
        return response.get_json()

    def wait_applied(self, env, creds, response, timeout=30):
        # The push answers `{}` once its job ended, or when SYNC_WAIT_SECONDS ran out: poll the job.
        deadline = time.monotonic() + timeout
        while True:
            rows = self._push_jobs(env, creds)
            if rows and all(status == "COMPLETED" for _, status in rows):
                return
            assert not any(status in ("FAILED", "CANCELLED") for _, status in rows), f"push jobs: {rows}"
            assert time.monotonic() < deadline, f"push jobs not COMPLETED in {timeout}s: {rows} ({STUCK_HINT})"
            time.sleep(0.1)

    def _push_jobs(self, env, creds):
        return env.sql("SELECT id::text, status FROM jobs WHERE tenant_id = :t AND kind = 'msupply.push' "
                       "ORDER BY created_at", {"t": creds.tenant_a})

    def stored_keys(self, env, creds) -> set[str]:
        peer = creds.extra["peer"]
        r = env.client.get(f"/sync/v3/queued_records?{_route(peer.extra['site_id'], limit=1000)}",
                           headers=peer.headers)
        assert r.status_code == 200, show(r)
        return {f"{e['RecordType']}:{e['RecordID']}" for e in r.get_json() if e["SyncType"] in ("I", "U")}

    def reported_errors(self, env, creds, response):
        jobs = self._push_jobs(env, creds)
        assert jobs, "no msupply.push job"
        job_id = jobs[-1][0]
        r = env.client.get(f"/jobs/{job_id}/errors?limit=500", headers=creds.extra["admin_a"].headers)
        assert r.status_code == 200, show(r)
        return [Reported(e["position"], e.get("record_id")) for e in r.get_json()["errors"]]

    # error requests
    def malformed_json_requests(self, creds):
        w = creds.writer
        return [Req("POST", self._push_path(w), {"headers": w.headers, "data": b'[{"SyncID": "s1",',
                                                 "content_type": "application/json"}, "push"),
                Req("POST", f"/sync/v3/acknowledged_records?{_route(w.extra['site_id'])}",
                    {"headers": w.headers, "data": b"not json", "content_type": "application/json"}, "acknowledge")]

    def oversize_requests(self, creds, limits):
        big = self.good_record(1)
        big["Data"]["blob"] = "x" * (limits["max_body_bytes"] + 1024)
        w = creds.writer
        push = Req("POST", self._push_path(w), {"headers": w.headers, "json": [big]}, "push")
        many = Req("POST", self._push_path(w), {"headers": w.headers,
                                                "json": [{}] * (limits["max_records_per_push"] + 1)},
                   "push over MAX_RECORDS_PER_PUSH")
        ack = Req("POST", f"/sync/v3/acknowledged_records?{_route(w.extra['site_id'])}",
                  {"headers": w.headers, "json": ["x" * (limits["max_body_bytes"] + 1)]}, "acknowledge")
        return [push, chunked(push), many, chunked(ack)]

    def unknown_path_requests(self, creds):
        w = creds.writer
        return [Req("GET", f"/sync/v3/no_such_endpoint?{_route(w.extra['site_id'])}", {"headers": w.headers}, "v3"),
                Req("POST", "/sync/v4/no_such_endpoint", {"headers": w.headers, "json": {}}, "v4"),
                Req("GET", "/api/v4/no_such_endpoint", {"headers": w.headers}, "api v4")]

    def wrong_role_requests(self, creds):
        return [Req("POST", "/admin/sites", {"headers": creds.reader.headers,
                                             "json": {"id": 77, "name": new_id("CT-77-"), "password": "pw"}},
                    "non-admin user registers a site")]

    def missing_credentials_requests(self, creds):
        w = creds.writer
        return [Req("POST", self._push_path(w), {"headers": {"msupply-site-uuid": w.headers["msupply-site-uuid"]},
                                                 "json": [self.good_record(1)]}, "push"),
                Req("GET", f"/sync/v3/queued_records/count?{_route(w.extra['site_id'])}", {}, "count")]

    def foreign_id_cases(self, env, creds):
        admin_b = creds.extra["admin_b"].headers
        a_site, unknown = str(SITE_A), str(UNKNOWN_SITE)
        cases = []
        for method in ("GET", "DELETE"):
            cases.append(ForeignIdCase(f"{method} site", Req(method, f"/admin/sites/{a_site}", {"headers": admin_b}),
                                       Req(method, f"/admin/sites/{unknown}", {"headers": admin_b}),
                                       [a_site, unknown]))
        cases.append(ForeignIdCase("PATCH site", Req("PATCH", f"/admin/sites/{a_site}",
                                                     {"headers": admin_b, "json": {"store_id": "X"}}),
                                   Req("PATCH", f"/admin/sites/{unknown}", {"headers": admin_b,
                                                                             "json": {"store_id": "X"}}),
                                   [a_site, unknown]))
        return cases

    def hostile_targets(self, env, creds):
        w = creds.writer
        h, site = w.headers, w.extra["site_id"]
        admin = creds.extra["admin_a"].headers
        push_path, v1_path = self._push_path(w), f"/sync/v1/queued_records?{_route(site)}"
        ack_path = f"/sync/v3/acknowledged_records?{_route(site)}"

        def batch(record):
            return lambda: [self.good_record(7), record]

        def record_with(**change):
            return lambda: [{**self.good_record(8), "SyncID": new_id("CT-SYNC-"), **change}]

        def v1(**change):
            record = {"SyncID": new_id("CT-V1-"), "TableNumber": 2, "RecordID": new_id("V1-"), "SyncType": "I",
                      "StoreID": "STORE-A", "fields": [1, 2], "values": ["a", "b"], **change}
            return lambda: [record]

        def site_body(**change):
            return lambda: {"id": 91, "name": new_id("CT-91-"), "password": "pw", **change}

        def route_query(name):
            other = "to_site=1" if name == "from_site" else f"from_site={site}"
            return query_req("GET", "/sync/v3/queued_records/count", name, h, params=other)

        return [
            HostileTarget("push: one record", json_req("POST", push_path, batch(HOLE), h), expect="keep"),
            HostileTarget("push: a record's SyncID", json_req("POST", push_path, record_with(SyncID=HOLE), h),
                          expect="keep"),
            HostileTarget("push: a record's RecordID", json_req("POST", push_path, record_with(RecordID=HOLE), h),
                          expect="keep"),
            HostileTarget("push: a record's Data", json_req("POST", push_path, record_with(Data={"code": HOLE}), h),
                          expect="keep"),
            HostileTarget("push: a record's Data key", texts_only(json_req("POST", push_path,
                                                                           record_with(Data={HOLE: 1}), h)),
                          expect="keep"),
            HostileTarget("v1 push: TableNumber", json_req("POST", v1_path, v1(TableNumber=HOLE), h), expect="keep"),
            HostileTarget("v1 push: a field number", json_req("POST", v1_path, v1(fields=[HOLE, 2]), h),
                          expect="keep"),
            HostileTarget("v1 push: a value", json_req("POST", v1_path, v1(values=[HOLE, "b"]), h), expect="keep"),
            HostileTarget("pull ?sync_id", query_req("GET", "/sync/v3/queued_records", "sync_id", h,
                                                     params=_route(site)), only=("nul", "long_text", "digits_5000")),
            HostileTarget("pull ?limit", query_req("GET", "/sync/v3/queued_records", "limit", h, params=_route(site)),
                          only=TEXTUAL),
            HostileTarget("?from_site", route_query("from_site")),
            HostileTarget("?to_site", route_query("to_site")),
            HostileTarget("acknowledge SyncRecordIDs", json_req("POST", ack_path, {"SyncRecordIDs": HOLE}, h),
                          only=all_but("array", "deep_1000")),
            HostileTarget("acknowledge SyncRecordIDs[0]", json_req("POST", ack_path, {"SyncRecordIDs": [HOLE]}, h),
                          only=("nul", "lone_surrogate", "long_text")),
            HostileTarget("acknowledge a bare array", json_req("POST", ack_path, [HOLE], h),
                          only=("nul", "lone_surrogate", "long_text")),
            HostileTarget("v4 name_store_join name_ID", json_req("POST", "/sync/v4/name_store_join",
                                                                 {"name_ID": HOLE, "store_ID": "STORE-A"}, h)),
            HostileTarget("v4 name_store_join store_ID", json_req("POST", "/api/v4/name_store_join",
                                                                  {"name_ID": "N1", "store_ID": HOLE}, h)),
            HostileTarget("v4 patient_history ?id", query_req("GET", "/api/v4/patient_history", "id", h),
                          only=("nul", "long_text", "digits_5000")),
            HostileTarget("?site_name", query_req("GET", "/sync/v3/site", "site_name", h), expect="any"),
            HostileTarget("msupply-site-uuid header", lambda v: None if v.text is None else Req(
                "GET", f"/sync/v3/queued_records/count?{_route(site)}",
                {"headers": {**h, "msupply-site-uuid": v.text}})),
            HostileTarget("/admin/sites id", json_req("POST", "/admin/sites", site_body(id=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/sites name", json_req("POST", "/admin/sites", site_body(name=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/sites password", json_req("POST", "/admin/sites", site_body(password=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/sites store_id", json_req("POST", "/admin/sites", site_body(store_id=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/sites a field's name", texts_only(json_req("POST", "/admin/sites",
                                                                             site_body(**{HOLE: "x"}), admin)),
                          envelope="fieldsync"),
            HostileTarget("PATCH /admin/sites/<id> name", json_req("PATCH", f"/admin/sites/{SITE_A}",
                                                                   {"name": HOLE}, admin), envelope="fieldsync"),
            HostileTarget("PATCH /admin/sites/<id> supplying_store_id",
                          json_req("PATCH", f"/admin/sites/{PEER_A}", {"supplying_store_id": HOLE}, admin),
                          envelope="fieldsync"),
            HostileTarget("GET /admin/sites/<id>", lambda v: None if v.query is None else
                          Req("GET", f"/admin/sites/{v.query}", {"headers": admin}), envelope="fieldsync"),
            HostileTarget("DELETE /admin/sites/<id>", lambda v: None if v.query is None else
                          Req("DELETE", f"/admin/sites/{v.query}", {"headers": admin}), envelope="fieldsync"),
        ]

    def assert_tenant_a_intact(self, env, creds):
        r = env.client.get(f"/admin/sites/{SITE_A}", headers=creds.extra["admin_a"].headers)
        assert r.status_code == 200 and r.get_json()["name"] == creds.writer.name, f"tenant A's site: {show(r)}"

    def assert_error_envelope(self, response, status):
        assert response.status_code == status, f"expected {status}: {show(response)}"
        body = json_body(response)
        assert isinstance(body, dict), f"not a JSON object: {show(response)}"
        assert isinstance(body.get("error"), str) and body["error"], f"no 'error' text: {show(response)}"
        path = response.request.path
        if path.startswith("/sync/") or path.startswith("/api/v4/"):
            assert set(body) == {"error"}, f'mSupply sync errors are exactly {{"error": "<text>"}}: {show(response)}'
        else:
            assert isinstance(body.get("message"), str), f"admin API errors carry a message: {show(response)}"
