"""mSupply's SQL and settings: routing per deployment, the credential check, the fan-out hook."""
import hashlib
import json

from sqlalchemy import text

from config.settings import Settings
from models.engine import Incoming, apply_chunk
from models.msupply import NAMESPACE
from models.msupply import store as msupply


def test_routing_comes_from_the_deployments_file(tmp_path):
    assert msupply.routing_for(None) is msupply.DEFAULT_ROUTING
    path = tmp_path / "routing.json"
    path.write_text(json.dumps({"routes": {"item": {"mode": "none"}}}))
    routing = msupply.routing_for(str(path))
    assert routing.routes["item"].mode == "none" and routing.routes["name"].mode == "all"
    assert msupply.routing_for(str(path)) is routing  # read once per process


def test_password_digest_check():
    from models.users import hash_password
    stored = hash_password("s3cret", rounds=4)  # bcrypt of the sha256 hex, as sites are stored
    digest = hashlib.sha256(b"s3cret").hexdigest()
    assert msupply.check_password_digest(stored, digest, allow_plain=False)
    assert msupply.check_password_digest(stored, digest.upper(), allow_plain=False)
    assert not msupply.check_password_digest(stored, "s3cret", allow_plain=False)  # v2+ must send the digest
    assert msupply.check_password_digest(stored, "s3cret", allow_plain=True)      # v1 may send it plain
    assert not msupply.check_password_digest(stored, "wrong", allow_plain=True)
    assert not msupply.check_password_digest("not-a-bcrypt-hash", digest, allow_plain=False)


def test_the_after_apply_hook_fans_changes_out_to_site_queues(db_session):
    site = msupply.create_site(db_session, tenant_id="ms-hook", site_id=7, name="HookSite7", password="pw",
                               rounds=4, store_id="S7")
    hooks = msupply.after_apply(Settings())[NAMESPACE]
    apply_chunk(db_session, tenant_id="ms-hook", namespace=NAMESPACE, hooks=hooks, records=[
        Incoming(position=0, key="item:I1", record_type="item", data={"code": "A"}, meta={"store_id": ""})])
    assert msupply.queue_count(db_session, site.tenant_id, 7) == 1
    # without the hook (another namespace's apply, say) nothing is queued
    apply_chunk(db_session, tenant_id="ms-hook", namespace=NAMESPACE, records=[
        Incoming(position=0, key="item:I2", record_type="item", data={"code": "B"}, meta={"store_id": ""})])
    assert msupply.queue_count(db_session, site.tenant_id, 7) == 1
    kinds = db_session.execute(text("SELECT sync_type FROM msupply_queue WHERE tenant_id = 'ms-hook'")).scalars().all()
    assert kinds == ["I"]
