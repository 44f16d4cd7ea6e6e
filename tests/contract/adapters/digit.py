"""DIGIT Health sync: fieldsync access tokens (in requestInfo.authToken, or Bearer for the filestore);
push = upload the sync file (POST /filestore/v1/files) + hand it in (POST /sync/file/v1/_create), which
answers at once with the syncId; applied = POST /sync/file/status/v1/_search says COMPLETED; the same bytes
handed in again are the same sync. Entities are validated against the campaign's published forms; the
status reports the rejected ones. DIGIT has no read API for stored entities, so stored keys come from
`records` (namespace `digit`, key `<campaignId>:<schema>:<clientReferenceId>`).

Errors are the tracer's `{"ResponseInfo": null, "Errors": [{"code", "message", "description", "params"}]}`;
DIGIT answers 400 for every client error except 401, 403, 409, 413 and 429, so its not-found status is
400 too (docs/digit.md: "HTTP 400 for validation errors and unknown ids")."""
from __future__ import annotations

import io
import json
import time
import uuid

from tests.contract.adapters.base import (
    Creds, DialectAdapter, Env, ForeignIdCase, Reported, Req, STUCK_HINT, json_body, make_user, show,
)

SCHEMA = "household"
KEPT_STATUSES = {401, 403, 409, 413, 429}


def household_form(tenant: str, campaign: str) -> dict:
    return {
        "campaignId": campaign, "tenantId": tenant, "schema": SCHEMA, "version": 1,
        "submitButtonText": "SUBMIT", "nextPageRoute": "/home", "submitPath": "/household/v1/_create",
        "elements": [
            {"type": "dataElement", "name": "First Name", "key": "firstName", "dataType": "text",
             "validations": [{"name": "required", "attribute": True}, {"name": "max", "attribute": 40}]},
            {"type": "dataElement", "name": "Members", "key": "memberCount", "dataType": "integer",
             "validations": [{"name": "required", "attribute": True}, {"name": "min", "attribute": 1}]},
        ],
    }


def envelope(sync: dict, token: str | None) -> dict:
    info = {"apiId": "hcm", "ver": "1.0", "ts": 1, "action": "create", "msgId": uuid.uuid4().hex}
    if token is not None:
        info["authToken"] = token
    return {"RequestInfo": info, "sync": sync}


class DigitAdapter(DialectAdapter):
    name = "digit"
    namespace = "digit"
    not_found_status = 400
    forbidden_status = 403
    push_ok_statuses = (200,)

    def setup(self, env: Env, tenant_a: str, tenant_b: str) -> Creds:
        campaign = f"CT-{tenant_a}"
        r = env.client.post("/admin/forms", headers=env.admin_headers, json=household_form(tenant_a, campaign))
        assert r.status_code == 201, show(r)
        return Creds(tenant_a=tenant_a, tenant_b=tenant_b,
                     writer=make_user(env, tenant_a, "read-write"),
                     reader=make_user(env, tenant_a, "read-only"),
                     other_writer=make_user(env, tenant_b, "read-write"),
                     extra={"campaign": campaign, "campaign_b": f"CT-{tenant_b}"})

    # records
    def good_record(self, i: int) -> dict:
        return {"clientReferenceId": f"hh-{i:04d}", "firstName": f"Name {i}", "memberCount": 1 + i % 5,
                "auditDetails": {"createdTime": 1700000000000 + i}}

    def bad_record(self) -> dict:
        record = self.good_record(9999)
        record["clientReferenceId"] = "hh-bad"
        record["firstName"] = 12345  # a required text field given a number
        return record

    def key_of(self, record) -> str:
        return record["clientReferenceId"]

    # hand-in
    @staticmethod
    def _file(records) -> bytes:
        return json.dumps({"entities": {SCHEMA: records}}, sort_keys=True).encode()

    def _upload_req(self, principal, tenant: str, data: bytes, name: str = "sync.json") -> Req:
        return Req("POST", "/filestore/v1/files",
                   {"headers": principal.headers, "content_type": "multipart/form-data",
                    "data": {"tenantId": tenant, "file": (io.BytesIO(data), name)}}, "upload")

    def _create_req(self, principal, tenant: str, campaign: str, file_ref: str, **extra) -> Req:
        return Req("POST", "/sync/file/v1/_create",
                   {"json": envelope({"tenantId": tenant, "campaignId": campaign, "file": file_ref, **extra},
                                     principal.token)}, "_create")

    def _status_req(self, principal, tenant: str, sync_id: str, campaign: str | None = None) -> Req:
        sync = {"tenantId": tenant, "syncId": sync_id}
        if campaign:
            sync["campaignId"] = campaign
        return Req("POST", "/sync/file/status/v1/_search", {"json": envelope(sync, principal.token)}, "status")

    def _upload(self, env, principal, tenant, data, name="sync.json"):
        return self._upload_req(principal, tenant, data, name).send(env.client)

    def push(self, env, creds, records, batch_id):
        up = self._upload(env, creds.writer, creds.tenant_a, self._file(records), name=f"{batch_id}.json")
        if up.status_code != 201:
            return up
        file_id = up.get_json()["files"][0]["fileStoreId"]
        return self._create_req(creds.writer, creds.tenant_a, creds.extra["campaign"], file_id).send(env.client)

    def replay_answer(self, response):
        return response.get_json()["sync"]["syncId"]

    def _status(self, env, creds, sync_id):
        r = self._status_req(creds.writer, creds.tenant_a, sync_id, creds.extra["campaign"]).send(env.client)
        assert r.status_code == 200, show(r)
        return r.get_json()["sync"]

    def wait_applied(self, env, creds, response, timeout=30):
        sync_id = self.replay_answer(response)
        deadline = time.monotonic() + timeout
        while True:
            sync = self._status(env, creds, sync_id)
            if sync["status"] == "COMPLETED":
                return
            assert sync["status"] != "FAILED", f"sync {sync_id} FAILED: {sync}"
            assert time.monotonic() < deadline, f"sync {sync_id} not applied in {timeout}s ({STUCK_HINT}): {sync}"
            time.sleep(0.1)

    def stored_keys(self, env, creds) -> set[str]:
        prefix = f"{creds.extra['campaign']}:{SCHEMA}:"
        rows = env.sql("SELECT record_key FROM records WHERE tenant_id = :t AND namespace = :ns AND NOT deleted",
                       {"t": creds.tenant_a, "ns": self.namespace})
        return {key[len(prefix):] if key.startswith(prefix) else key for (key,) in rows}

    def reported_errors(self, env, creds, response):
        sync_id = self.replay_answer(response)
        sync = self._status(env, creds, sync_id)
        reported = [Reported(e["position"], e.get("clientReferenceId")) for e in sync.get("errors") or []]
        assert sync["counts"]["rejected"] == len(reported), f"status counts disagree with its errors: {sync}"
        # the full list, fieldsync's GET /jobs/<syncId>/errors, must say the same
        r = env.client.get(f"/jobs/{sync_id}/errors", headers=creds.writer.headers)
        assert r.status_code == 200, show(r)
        assert [(e["position"], e["record_id"]) for e in r.get_json()["errors"]] == \
            [(x.position, x.record_id) for x in reported], show(r)
        return reported

    # error requests
    def malformed_json_requests(self, creds):
        return [Req("POST", path, {"data": b'{"RequestInfo": {"authToken": "' + creds.writer.token.encode() + b'"},',
                                   "content_type": "application/json"}, path.rsplit("/", 2)[-2])
                for path in ("/sync/file/v1/_create", "/sync/file/status/v1/_search", "/sync/forms/v1/_search")]

    def oversize_requests(self, creds, limits):
        w = creds.writer
        body = self._create_req(w, creds.tenant_a, creds.extra["campaign"], str(uuid.uuid4()),
                                auditDetails={"pad": "x" * (limits["max_body_bytes"] + 1024)})
        upload = self._upload_req(w, creds.tenant_a, self._file([self.good_record(1)]) +
                                  b" " * (limits["max_upload_bytes"] + 1024))
        upload.label = "upload over MAX_UPLOAD_BYTES"
        return [body, upload]

    def unknown_path_requests(self, creds):
        w = creds.writer
        return [Req("POST", "/sync/file/v1/_nope", {"json": envelope({"tenantId": creds.tenant_a}, w.token)}, "sync"),
                Req("POST", "/sync/forms/v1/_update", {"json": envelope({"tenantId": creds.tenant_a}, w.token)},
                    "forms"),
                Req("GET", "/filestore/v1/nope", {"headers": w.headers}, "filestore")]

    def wrong_role_requests(self, creds):
        r = creds.reader
        return [self._create_req(r, creds.tenant_a, creds.extra["campaign"], str(uuid.uuid4())),
                self._upload_req(r, creds.tenant_a, self._file([self.good_record(1)]))]

    def missing_credentials_requests(self, creds):
        w = creds.writer
        no_token = Req("POST", "/sync/file/v1/_create", {"json": envelope(
            {"tenantId": creds.tenant_a, "campaignId": creds.extra["campaign"], "file": str(uuid.uuid4())}, None)},
            "_create")
        status = Req("POST", "/sync/file/status/v1/_search", {"json": envelope(
            {"tenantId": creds.tenant_a, "syncId": str(uuid.uuid4())}, None)}, "status")
        upload = self._upload_req(w, creds.tenant_a, self._file([self.good_record(1)]))
        upload.kwargs["headers"] = {}
        return [no_token, status, upload]

    def foreign_id_cases(self, env, creds):
        a, b = creds.writer, creds.other_writer
        up = self._upload(env, a, creds.tenant_a, self._file([self.good_record(1), self.good_record(2)]))
        assert up.status_code == 201, show(up)
        file_id = up.get_json()["files"][0]["fileStoreId"]
        created = self._create_req(a, creds.tenant_a, creds.extra["campaign"], file_id).send(env.client)
        assert created.status_code == 200, show(created)
        sync_id = created.get_json()["sync"]["syncId"]
        unknown = str(uuid.uuid4())
        ta, tb, camp_b = creds.tenant_a, creds.tenant_b, creds.extra["campaign_b"]
        return [
            ForeignIdCase("status of A's sync in B's tenant", self._status_req(b, tb, sync_id),
                          self._status_req(b, tb, unknown), [sync_id, unknown]),
            ForeignIdCase("status of A's sync naming A's tenant", self._status_req(b, ta, sync_id),
                          self._status_req(b, ta, unknown), [sync_id, unknown]),
            ForeignIdCase("_create with A's fileStoreId", self._create_req(b, tb, camp_b, file_id),
                          self._create_req(b, tb, camp_b, unknown), [file_id, unknown]),
            ForeignIdCase("download A's file",
                          Req("GET", f"/filestore/v1/files/id?tenantId={tb}&fileStoreId={file_id}", {"headers": b.headers}),
                          Req("GET", f"/filestore/v1/files/id?tenantId={tb}&fileStoreId={unknown}", {"headers": b.headers}),
                          [file_id, unknown]),
            ForeignIdCase("download A's file by its content path",
                          Req("GET", f"/filestore/v1/files/{file_id}/content", {"headers": b.headers}),
                          Req("GET", f"/filestore/v1/files/{unknown}/content", {"headers": b.headers}),
                          [file_id, unknown]),
            ForeignIdCase("download URL of A's file (left out, as unknown ids are)",
                          Req("GET", f"/filestore/v1/files/url?tenantId={tb}&fileStoreIds={file_id}", {"headers": b.headers}),
                          Req("GET", f"/filestore/v1/files/url?tenantId={tb}&fileStoreIds={unknown}", {"headers": b.headers}),
                          [file_id, unknown], status=200),
        ]

    def assert_error_envelope(self, response, status):
        assert response.status_code == status, f"expected {status}: {show(response)}"
        body = json_body(response)
        assert isinstance(body, dict), f"not a JSON object: {show(response)}"
        assert set(body) == {"ResponseInfo", "Errors"} and body["ResponseInfo"] is None, \
            f'DIGIT errors are {{"ResponseInfo": null, "Errors": [...]}}: {show(response)}'
        errors = body["Errors"]
        assert isinstance(errors, list) and errors, f"Errors must be a non-empty list: {show(response)}"
        for err in errors:
            assert isinstance(err, dict) and set(err) == {"code", "message", "description", "params"}, \
                f"each error is {{code, message, description, params}}: {show(response)}"
            assert isinstance(err["code"], str) and err["code"], show(response)
            assert isinstance(err["message"], str) and err["message"], show(response)
