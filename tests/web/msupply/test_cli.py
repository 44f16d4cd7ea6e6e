"""`fieldsync site create|list|reset-hardware|set-password` against the test database (committed
rows, so names are unique per test)."""
import uuid

from click.testing import CliRunner

from models.msupply import store as msupply
from models.db import session_scope
from web.msupply.cli import group as site


def _env(settings):
    return {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, "BCRYPT_ROUNDS": "4"}


def test_site_commands(settings, real_sessions):
    runner = CliRunner()
    tenant, name = f"cli-{uuid.uuid4().hex[:6]}", f"CliSat-{uuid.uuid4().hex[:6]}"
    env = _env(settings)
    result = runner.invoke(site, ["create", "--id", "7", "--name", name, "--tenant", tenant, "--store-id", "S7",
                                  "--password", "pw-1"], env=env)
    assert result.exit_code == 0, result.output
    assert runner.invoke(site, ["create", "--id", "7", "--name", name + "x", "--tenant", tenant, "--password", "p"],
                         env=env).exit_code != 0
    assert runner.invoke(site, ["create", "--id", "1", "--name", name + "y", "--tenant", tenant, "--password", "p"],
                         env=env).exit_code != 0
    listed = runner.invoke(site, ["list", "--tenant", tenant], env=env)
    assert f"{tenant}\t7\t{name}\tstore=S7\thardware=-" in listed.output
    with session_scope(real_sessions) as s:
        found = msupply.get_site(s, tenant, 7)
        assert msupply.check_site_password(found, "pw-1", allow_plain=True)
        msupply.bind_hardware(s, found, "phone")
    assert runner.invoke(site, ["reset-hardware", "7", "--tenant", tenant], env=env).exit_code == 0
    assert runner.invoke(site, ["set-password", "7", "--tenant", tenant, "--password", "pw-2"], env=env).exit_code == 0
    with session_scope(real_sessions) as s:
        found = msupply.get_site(s, tenant, 7)
        assert found.hardware_id is None
        assert msupply.check_site_password(found, "pw-2", allow_plain=True)
        assert not msupply.check_site_password(found, "pw-1", allow_plain=True)
    assert runner.invoke(site, ["reset-hardware", "8", "--tenant", tenant], env=env).exit_code != 0
