"""Helpers shared by the mSupply tests: sites, Basic headers, and records written through the engine."""
from __future__ import annotations

import base64
import hashlib
import uuid

from models.msupply import store as msupply
from models.engine import Incoming, apply_chunk

PASSWORD = "sat-secret"


def uid() -> str:
    return uuid.uuid4().hex.upper()


def sha(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def make_site(session, *, tenant: str, site_id: int, name: str | None = None, password: str = PASSWORD,
              store_id: str = "", name_id: str = "", **fields) -> msupply.Site:
    site = msupply.create_site(session, tenant_id=tenant, site_id=site_id, name=name or f"Sat-{uid()[:10]}",
                               password=password, rounds=4, store_id=store_id, name_id=name_id, **fields)
    session.commit()
    return site


def headers(site_name: str, password: str = PASSWORD, *, hardware: str | None = "device-1",
            hashed: bool = True) -> dict:
    secret = sha(password) if hashed else password
    out = {"Authorization": "Basic " + base64.b64encode(f"{site_name}:{secret}".encode()).decode()}
    if hardware is not None:
        out["msupply-site-uuid"] = hardware
    return out


def route(site_id: int, **extra) -> str:
    params = {"from_site": site_id, "to_site": 1, **extra}
    return "&".join(f"{k}={v}" for k, v in params.items())


def put(session, tenant: str, records: list[tuple], origin: str | None = None, settings=None) -> None:
    """Write (record_type, record_id, data, store_id) tuples as a central edit (or from `origin`), with
    the dialect's after-apply hooks (the queue fan-out) as a worker would run them."""
    from config.settings import Settings
    from models.dialects import after_apply_hooks
    hooks = after_apply_hooks(settings or Settings()).get(msupply.NAMESPACE, [])
    incoming = []
    for position, rec in enumerate(records):
        record_type, record_id, data = rec[0], rec[1], rec[2]
        store = rec[3] if len(rec) > 3 else ""
        incoming.append(Incoming(position=position, key=f"{record_type}:{record_id}", record_type=record_type,
                                 data=data, deleted=data is None, meta={"store_id": store}))
    apply_chunk(session, tenant_id=tenant, namespace=msupply.NAMESPACE, records=incoming, origin=origin, hooks=hooks)
    session.commit()


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    return body
