"""Synkronus 1.0.3: Bearer tokens from /auth/login; push = POST /sync/push with a transmission_id (answered
after the job, byte-identical on replay); read back = POST /sync/pull; per-record errors in the answer's
`failed_records`. Errors: `{"error", "message"}`; 401/403 are application/problem+json with `type`,
`title`, `status` and `detail`."""
from __future__ import annotations

import uuid

from tests.contract.adapters.base import (
    HOLE, TEXTUAL, Creds, DialectAdapter, Env, ForeignIdCase, HostileTarget, Reported, Req, all_but, json_body,
    chunked, json_req, make_user, new_id, query_req, show, texts_only,
)

PROBLEM_JSON = "application/problem+json"


class SynkronusAdapter(DialectAdapter):
    name = "synkronus"
    namespace = "synkronus"
    not_found_status = 404
    forbidden_status = 403
    push_ok_statuses = (200,)

    def setup(self, env: Env, tenant_a: str, tenant_b: str) -> Creds:
        return Creds(tenant_a=tenant_a, tenant_b=tenant_b,
                     writer=make_user(env, tenant_a, "read-write"),
                     reader=make_user(env, tenant_a, "read-only"),
                     other_writer=make_user(env, tenant_b, "read-write"),
                     extra={"admin_b": make_user(env, tenant_b, "admin")})

    # records
    def good_record(self, i: int) -> dict:
        return {"observation_id": f"obs-{i:04d}", "form_type": "survey", "form_version": "1",
                "data": {"n": i, "answer": f"yes {i}"}, "created_at": "2024-01-15T10:30:00Z",
                "updated_at": "2024-01-15T10:30:00Z", "deleted": False}

    def bad_record(self) -> dict:
        record = self.good_record(9999)
        record["observation_id"] = "obs-bad"
        record["data"] = "not an object"  # `data` is a required object
        return record

    def key_of(self, record) -> str:
        return record["observation_id"]

    # hand-in
    def _push_body(self, records, batch_id, client_id="contract-phone"):
        return {"transmission_id": batch_id, "client_id": client_id, "records": records}

    def push(self, env, creds, records, batch_id):
        return env.client.post("/sync/push", headers=creds.writer.headers, json=self._push_body(records, batch_id))

    def stored_keys(self, env, creds) -> set[str]:
        keys, since = {}, 0
        while True:
            r = env.client.post("/sync/pull?limit=500", headers=creds.writer.headers,
                                json={"client_id": f"contract-reader-{uuid.uuid4().hex[:6]}",
                                      "since": {"version": since}})
            assert r.status_code == 200, show(r)
            body = r.get_json()
            for rec in body["records"]:
                keys[rec["observation_id"]] = rec["deleted"]
            if not body["has_more"]:
                return {k for k, deleted in keys.items() if not deleted}
            since = body["change_cutoff"]

    def reported_errors(self, env, creds, response):
        body = response.get_json()
        return [Reported(f["index"], (f.get("record") or {}).get("observation_id")
                         if isinstance(f.get("record"), dict) else None)
                for f in body.get("failed_records") or []]

    # error requests
    def malformed_json_requests(self, creds):
        return [Req("POST", "/sync/push", {"headers": creds.writer.headers, "data": b'{"transmission_id": "t1", ',
                                           "content_type": "application/json"}, "push"),
                Req("POST", "/sync/pull", {"headers": creds.writer.headers, "data": b"{nope",
                                           "content_type": "application/json"}, "pull")]

    def oversize_requests(self, creds, limits):
        big = self.good_record(1)
        big["data"] = {"blob": "x" * (limits["max_body_bytes"] + 1024)}
        push = Req("POST", "/sync/push", {"headers": creds.writer.headers,
                                          "json": self._push_body([big], new_id("tx-"))}, "push")
        many = Req("POST", "/sync/push", {"headers": creds.writer.headers, "json": self._push_body(
            [{}] * (limits["max_records_per_push"] + 1), new_id("tx-"))}, "push over MAX_RECORDS_PER_PUSH")
        pull = Req("POST", "/sync/pull", {"headers": creds.writer.headers,
                                          "json": {"client_id": "x" * (limits["max_body_bytes"] + 1)}}, "pull")
        return [push, chunked(push), many, chunked(pull)]

    def unknown_path_requests(self, creds):
        return [Req("POST", "/sync/no-such-endpoint", {"headers": creds.writer.headers, "json": {}}, "sync"),
                Req("GET", "/users/no/such/path", {"headers": creds.writer.headers}, "users")]

    def wrong_role_requests(self, creds):
        return [Req("POST", "/sync/push", {"headers": creds.reader.headers,
                                           "json": self._push_body([self.good_record(1)], new_id("tx-"))},
                    "read-only user pushes"),
                Req("POST", "/users/create", {"headers": creds.writer.headers,
                                              "json": {"username": new_id("x-"), "password": "pw",
                                                       "role": "read-write"}}, "writer creates a user")]

    def missing_credentials_requests(self, creds):
        return [Req("POST", "/sync/push", {"json": self._push_body([self.good_record(1)], new_id("tx-"))}, "push"),
                Req("POST", "/sync/pull", {"json": {"client_id": "c", "since": {"version": 0}}}, "pull")]

    def foreign_id_cases(self, env, creds):
        r = self.push(env, creds, [self.good_record(1)], new_id("tx-"))
        assert r.status_code == 202, show(r)  # no worker runs: the push is stored as a queued job
        job_id = r.get_json()["job_id"]
        unknown = str(uuid.uuid4())
        b = creds.other_writer.headers
        admin_b = creds.extra["admin_b"].headers
        unknown_user = new_id("nobody-")
        return [
            ForeignIdCase("job status", Req("GET", f"/jobs/{job_id}", {"headers": b}),
                          Req("GET", f"/jobs/{unknown}", {"headers": b}), [job_id, unknown]),
            ForeignIdCase("job errors", Req("GET", f"/jobs/{job_id}/errors", {"headers": b}),
                          Req("GET", f"/jobs/{unknown}/errors", {"headers": b}), [job_id, unknown]),
            ForeignIdCase("delete a user", Req("DELETE", f"/users/{creds.reader.name}", {"headers": admin_b}),
                          Req("DELETE", f"/users/{unknown_user}", {"headers": admin_b}),
                          [creds.reader.name, unknown_user]),
        ]

    def hostile_targets(self, env, creds):
        w = creds.writer.headers

        def push(**change):
            def template():
                body = self._push_body([self.good_record(1)], new_id("tx-"), client_id=new_id("phone-"))
                body.update(change)
                return body
            return template

        def with_record(record):
            return push(records=[self.good_record(2), record])

        def record_with(**change):
            return with_record({**self.good_record(3), **change})

        def pull(**change):
            return {"client_id": "hostile-phone", "since": {"version": 0}, **change}

        r = self.push(env, creds, [self.good_record(1)], new_id("tx-"))
        assert r.status_code == 202, show(r)  # no worker runs: the push is stored as a queued job
        job = r.get_json()["job_id"]
        return [
            HostileTarget("push transmission_id", json_req("POST", "/sync/push", push(transmission_id=HOLE), w)),
            HostileTarget("push client_id", json_req("POST", "/sync/push", push(client_id=HOLE), w)),
            HostileTarget("push records", json_req("POST", "/sync/push", push(records=HOLE), w),
                          only=all_but("array", "deep_1000")),
            HostileTarget("push: one record", json_req("POST", "/sync/push", with_record(HOLE), w), expect="keep"),
            HostileTarget("push: a record's observation_id",
                          json_req("POST", "/sync/push", record_with(observation_id=HOLE), w), expect="keep"),
            HostileTarget("push: a record's data", json_req("POST", "/sync/push", record_with(data={"q": HOLE}), w),
                          expect="keep"),
            HostileTarget("push: a record's deleted", json_req("POST", "/sync/push", record_with(deleted=HOLE), w),
                          expect="keep"),
            HostileTarget("push: a record's key", texts_only(json_req("POST", "/sync/push", record_with(data={HOLE: 1}),
                                                                       w)), expect="keep"),
            HostileTarget("pull client_id", json_req("POST", "/sync/pull", pull(client_id=HOLE), w)),
            HostileTarget("pull since", json_req("POST", "/sync/pull", pull(since=HOLE), w), only=all_but("object")),
            HostileTarget("pull since.version", json_req("POST", "/sync/pull", pull(since={"version": HOLE}), w)),
            HostileTarget("pull schema_types", json_req("POST", "/sync/pull", pull(schema_types=HOLE), w)),
            HostileTarget("pull schema_types[0]", json_req("POST", "/sync/pull", pull(schema_types=[HOLE]), w)),
            HostileTarget("pull ?schemaType", query_req("POST", "/sync/pull", "schemaType", w, json=pull()),
                          only=("nul", "long_text", "digits_5000")),
            HostileTarget("pull ?limit", query_req("POST", "/sync/pull", "limit", w, json=pull()), expect="any"),
            HostileTarget("GET /jobs/<id>", lambda h: None if h.query is None else
                          Req("GET", f"/jobs/{h.query}", {"headers": w}), envelope="fieldsync"),
            HostileTarget("GET /jobs/<id>/errors?after", query_req("GET", f"/jobs/{job}/errors", "after", w),
                          envelope="fieldsync"),
            HostileTarget("GET /jobs/<id>/errors?limit", query_req("GET", f"/jobs/{job}/errors", "limit", w),
                          only=TEXTUAL, envelope="fieldsync"),
        ]

    def assert_tenant_a_intact(self, env, creds):
        r = env.client.post("/auth/login", json={"username": creds.reader.name,
                                                 "password": creds.reader.extra["password"]})
        assert r.status_code == 200, f"tenant A's user is gone: {show(r)}"

    def assert_error_envelope(self, response, status):
        assert response.status_code == status, f"expected {status}: {show(response)}"
        body = json_body(response)
        assert isinstance(body, dict), f"not a JSON object: {show(response)}"
        if status in (401, 403):
            assert response.mimetype == PROBLEM_JSON, f"401/403 must be {PROBLEM_JSON}: {show(response)}"
            for key in ("type", "title", "detail"):
                assert isinstance(body.get(key), str) and body[key], f"problem+json without {key}: {show(response)}"
            assert body.get("status") == status, f"problem+json status member: {show(response)}"
        else:
            for key in ("error", "message"):
                assert isinstance(body.get(key), str) and body[key], f"no {key!r} text: {show(response)}"
