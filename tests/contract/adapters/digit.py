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
    HOLE, TEXTUAL, Creds, DialectAdapter, Env, ForeignIdCase, HostileTarget, Reported, Req, STUCK_HINT, all_but,
    chunked, json_body, json_req, make_user, query_req, show, texts_only,
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
        return [body, chunked(body), upload]

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

    def hostile_targets(self, env, creds):
        w, ta, camp = creds.writer, creds.tenant_a, creds.extra["campaign"]
        h, admin = w.headers, env.admin_headers
        up = self._upload(env, w, ta, self._file([self.good_record(1)]))
        assert up.status_code == 201, show(up)
        file_id = up.get_json()["files"][0]["fileStoreId"]
        started = env.client.post("/filestore/v1/uploads", headers=h, json={"tenantId": ta, "filename": "f.json"})
        assert started.status_code == 201, show(started)
        upload = started.get_json()["uploadId"]

        def sync(path, **fields):
            return json_req("POST", path, lambda: envelope(dict(fields), w.token))

        def create(**change):
            return sync("/sync/file/v1/_create", **{"tenantId": ta, "campaignId": camp, "file": file_id, **change})

        def status(**change):
            return sync("/sync/file/status/v1/_search", **{"tenantId": ta, "syncId": str(uuid.uuid4()), **change})

        def forms(**change):
            return sync("/sync/forms/v1/_search", **{"tenantId": ta, "campaignId": camp, **change})

        def multipart(field=None, filename="sync.json"):
            def build(v):
                if v.text is None:
                    return None
                data = {"tenantId": ta, "file": (io.BytesIO(self._file([self.good_record(2)])),
                                                 v.text if field == "filename" else filename)}
                if field and field != "filename":
                    data[field] = v.text
                return Req("POST", "/filestore/v1/files", {"headers": h, "content_type": "multipart/form-data",
                                                            "data": data})
            return build

        def header(name, prefix=""):
            def build(v):
                if v.text is None:
                    return None
                return Req("PATCH", f"/filestore/v1/uploads/{upload}", {"headers": {**h, name: prefix + v.text},
                                                                        "data": b"x"})
            return build

        def form(**change):
            return lambda: {**household_form(ta, camp), "version": 5, **change}

        def form_element(**change):
            body = household_form(ta, camp)
            body["version"] = 6
            body["elements"][0] = {**body["elements"][0], **change}
            return lambda: body

        start = "/filestore/v1/uploads"
        return [
            HostileTarget("_create tenantId", create(tenantId=HOLE)),
            HostileTarget("_create campaignId", create(campaignId=HOLE)),
            HostileTarget("_create file", create(file=HOLE)),
            HostileTarget("_create auditDetails", create(auditDetails={"note": HOLE}),
                          only=("nul", "lone_surrogate", "long_text", "digits_5000", "nan", "deep_1000")),
            HostileTarget("_create auditDetails key", texts_only(create(auditDetails={HOLE: 1}))),
            HostileTarget("status tenantId", status(tenantId=HOLE)),
            HostileTarget("status syncId", status(syncId=HOLE)),
            HostileTarget("status campaignId", status(campaignId=HOLE), expect="any"),
            HostileTarget("forms tenantId", forms(tenantId=HOLE)),
            HostileTarget("forms campaignId", forms(campaignId=HOLE)),
            HostileTarget("forms syncAll", forms(syncAll=HOLE), only=all_but("boolean")),
            HostileTarget("forms forms", forms(forms=HOLE)),
            HostileTarget("forms forms[0].schemaId", forms(forms=[{"schemaId": HOLE, "version": 1}]),
                          only=("nul", "long_text", "lone_surrogate", "digits_5000")),
            HostileTarget("forms forms[0].version", forms(forms=[{"schemaId": "household", "version": HOLE}]),
                          expect="any"),
            HostileTarget("upload tenantId", multipart("tenantId")),
            HostileTarget("upload ?tenantId", lambda v: None if v.query is None else Req(
                "POST", f"/filestore/v1/files?tenantId={v.query}",
                {"headers": h, "content_type": "multipart/form-data",
                 "data": {"file": (io.BytesIO(b"{}"), "a.json")}})),
            HostileTarget("upload module", multipart("module"), only=TEXTUAL),
            HostileTarget("upload file name", multipart("filename"), only=TEXTUAL),
            HostileTarget("start upload tenantId", json_req("POST", start, {"tenantId": HOLE}, h)),
            HostileTarget("start upload filename", json_req("POST", start, {"tenantId": ta, "filename": HOLE}, h)),
            HostileTarget("start upload contentType", json_req("POST", start, {"tenantId": ta, "contentType": HOLE},
                                                               h)),
            HostileTarget("start upload size", json_req("POST", start, {"tenantId": ta, "size": HOLE}, h)),
            HostileTarget("PATCH Upload-Offset", header("Upload-Offset")),
            HostileTarget("PUT Content-Range total", header("Content-Range", "bytes 0-0/")),
            HostileTarget("PUT Content-Range start", header("Content-Range", "bytes ")),
            HostileTarget("GET upload <id>", lambda v: None if v.query is None else
                          Req("GET", f"/filestore/v1/uploads/{v.query}", {"headers": h})),
            HostileTarget("finish sha256", json_req("POST", f"/filestore/v1/uploads/{upload}/_finish",
                                                    {"sha256": HOLE}, h)),
            HostileTarget("download ?fileStoreId", query_req("GET", "/filestore/v1/files/id", "fileStoreId", h,
                                                             params=f"tenantId={ta}")),
            HostileTarget("download URL ?fileStoreIds", query_req("GET", "/filestore/v1/files/url", "fileStoreIds", h,
                                                                 params=f"tenantId={ta}"), expect="any"),
            HostileTarget("signed download ?signature", query_req(
                "GET", f"/filestore/v1/files/{file_id}/content", "signature", {},
                params=f"tenantId={ta}&expires=99999999999")),
            HostileTarget("signed download ?expires", query_req(
                "GET", f"/filestore/v1/files/{file_id}/content", "expires", {}, params=f"tenantId={ta}&signature=ab")),
            HostileTarget("/admin/forms schema", json_req("POST", "/admin/forms", form(schema=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/forms campaignId", json_req("POST", "/admin/forms", form(campaignId=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/forms tenantId", json_req("POST", "/admin/forms", form(tenantId=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/forms version", json_req("POST", "/admin/forms", form(version=HOLE), admin),
                          envelope="fieldsync"),
            HostileTarget("/admin/forms an element's name", json_req("POST", "/admin/forms", form_element(name=HOLE),
                                                                     admin),
                          only=("nul", "lone_surrogate", "long_text", "digits_5000", "nan", "deep_1000"),
                          envelope="fieldsync"),
            HostileTarget("/admin/forms ?campaignId", query_req("GET", "/admin/forms", "campaignId", admin),
                          only=("nul", "long_text", "digits_5000"), envelope="fieldsync"),
            HostileTarget("/admin/forms ?schema", query_req("GET", "/admin/forms", "schema", admin),
                          only=("nul", "long_text", "digits_5000"), envelope="fieldsync"),
            HostileTarget("/admin/forms ?tenantId", query_req("GET", "/admin/forms", "tenantId", admin),
                          only=("nul", "long_text", "digits_5000"), envelope="fieldsync"),
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
