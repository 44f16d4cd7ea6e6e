"""Shared helpers for the DIGIT tests: sync-file builders, a sample form, envelopes."""
from __future__ import annotations

import io
import json
import uuid
import zipfile

CAMPAIGN = "CAMP-1"


def household(i: int, **overrides) -> dict:
    entity = {"clientReferenceId": f"hh-{i:07d}", "firstName": f"Name{i}", "memberCount": 1 + i % 7,
              "mobileNumber": f"98{i:08d}", "gender": "MALE" if i % 2 else "FEMALE",
              "address": {"locality": {"code": f"LOC{i % 50}"}, "city": "Town"},
              "auditDetails": {"createdTime": 1663646897000 + i}}
    entity.update(overrides)
    return entity


def individual(i: int) -> dict:
    return {"clientReferenceId": f"ind-{i:07d}", "name": {"givenName": f"Given{i}"}, "age": 20 + i % 50}


def json_document(households: list[dict], individuals: list[dict] | None = None) -> bytes:
    entities = {"household": households}
    if individuals is not None:
        entities["individual"] = individuals
    return json.dumps({"entities": entities}).encode()


def ndjson(rows: list[tuple[str, dict]]) -> bytes:
    return b"".join(json.dumps({"schema": s, "data": d}).encode() + b"\n" for s, d in rows)


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def household_form(version: int = 1, campaign: str = CAMPAIGN, tenant: str = "default", max_name: int = 20) -> dict:
    return {
        "campaignId": campaign, "tenantId": tenant, "schema": "household", "version": version,
        "submitButtonText": "SUBMIT_FORM", "nextPageRoute": "/home",
        "submitPath": "/egov-rn-service/registration/v1/_create",
        "elements": [
            {"type": "dataElement", "name": "First Name", "key": "firstName", "dataType": "text",
             "uiElementType": "text", "value": "null", "hint": "Enter First name",
             "validations": [{"name": "required", "attribute": True}, {"name": "max", "attribute": max_name}]},
            {"type": "dataElement", "name": "Members", "key": "memberCount", "dataType": "integer",
             "validations": [{"name": "min", "attribute": 1}, {"name": "max", "attribute": "30"}]},
            {"type": "dataElement", "name": "Mobile", "key": "mobileNumber", "dataType": "text",
             "validations": [{"name": "pattern", "attribute": "[0-9]{10}"}]},
            {"type": "dataElement", "name": "Gender", "key": "gender", "dataType": "text",
             "validations": [{"name": "allowedValues", "attribute": ["MALE", "FEMALE", "OTHER"]}]},
            {"type": "dataElement", "name": "Locality", "key": "address.locality.code", "dataType": "text",
             "validations": [{"name": "required", "attribute": True}]},
        ],
    }


def individual_form(version: int = 1, campaign: str = CAMPAIGN, tenant: str = "default") -> dict:
    return {"campaignId": campaign, "tenantId": tenant, "schema": "individual", "version": version,
            "submitButtonText": "SUBMIT", "nextPageRoute": "/home", "submitPath": "/individual/v1/_create",
            "elements": [{"type": "dataElement", "name": "Age", "key": "age", "dataType": "number",
                          "validations": [{"name": "maxValue", "attribute": 150}]}]}


def envelope(sync: dict, token: str | None = None, *, key: str = "requestInfo", msg_id: str | None = None) -> dict:
    info = {"apiId": "hcm", "ver": "1.0", "ts": 1, "action": "create", "msgId": msg_id or uuid.uuid4().hex}
    if token is not None:
        info["authToken"] = token
    return {key: info, "sync": sync}


def upload_bytes(client, headers: dict, data: bytes, tenant: str = "default", name: str = "sync.json") -> dict:
    resp = client.post("/filestore/v1/files", headers=headers, content_type="multipart/form-data",
                       data={"tenantId": tenant, "file": (io.BytesIO(data), name)})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["files"][0]
