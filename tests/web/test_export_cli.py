"""`fieldsync export run` and `fieldsync export schedule …` against the test database."""
import uuid

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from models.db import session_scope
from models.engine import Incoming, apply_chunk
from models.users import ensure_tenant
from web.cli import main


@pytest.fixture
def run(settings, engine, tmp_path):
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "EXPORT_TARGET_ROOT": str(tmp_path / "root"), "FIELDSYNC_DATA_DIR": str(tmp_path / "data")}

    def invoke(*args):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return invoke


def test_export_run_writes_files_and_a_manifest(run, real_sessions, tmp_path):
    tenant = f"cli-{uuid.uuid4().hex[:6]}"
    with session_scope(real_sessions) as s:
        ensure_tenant(s, tenant)
        apply_chunk(s, tenant_id=tenant, namespace="msupply", records=[
            Incoming(position=i, key=f"item:{i}", record_type="item", data={"qty": i, "name": f"n{i}"})
            for i in range(30)])
    out = tmp_path / "out"
    r = run("export", "run", "--namespace", "msupply", "--tenant", tenant, "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "wrote 1 file(s), 30 rows" in r.output and "exporting 30 rows" in r.output
    frame = pl.read_parquet(out / "item.parquet")
    assert sorted(frame["data_qty"].to_list()) == [float(i) for i in range(30)]
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [str(out / "item.parquet")]).fetchone() == (30,)
    assert (out / "manifest.json").is_file()
    again = run("export", "run", "--namespace", "msupply", "--tenant", tenant, "--out", str(out))
    assert again.exit_code == 1 and "not empty" in again.output
    bad = run("export", "run", "--namespace", "nope", "--out", str(tmp_path / "x"))
    assert bad.exit_code == 1 and "namespace must be one of" in bad.output


def test_schedule_add_list_pause_remove(run):
    tenant = f"cli-{uuid.uuid4().hex[:6]}"
    r = run("export", "schedule", "add", "nightly", "--tenant", tenant, "--cron", "0 2 * * *",
            "--namespace", "digit", "--target", "digit/nightly", "--retention", "3")
    assert r.exit_code == 0, r.output
    assert "nightly" in run("export", "schedule", "list", "--tenant", tenant).output
    assert run("export", "schedule", "pause", "nightly", "--tenant", tenant).exit_code == 0
    assert "paused" in run("export", "schedule", "list", "--tenant", tenant).output
    assert run("export", "schedule", "pause", "nightly", "--tenant", tenant, "--resume").exit_code == 0
    bad_cron = run("export", "schedule", "add", "x", "--tenant", tenant, "--cron", "whenever", "--namespace",
                   "digit", "--target", "t")
    assert bad_cron.exit_code == 1 and "cron" in bad_cron.output
    escape = run("export", "schedule", "add", "y", "--tenant", tenant, "--cron", "0 2 * * *", "--namespace",
                 "digit", "--target", "../../etc")
    assert escape.exit_code == 1 and ".." in escape.output
    assert run("export", "schedule", "remove", "nightly", "--tenant", tenant).exit_code == 0
    assert run("export", "schedule", "remove", "nightly", "--tenant", tenant).exit_code == 1
