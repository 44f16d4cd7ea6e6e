"""The fieldsync command line against the test database."""
import uuid

import pytest
from click.testing import CliRunner

from models import jobs
from models.db import session_scope
from models.users import ensure_tenant
from web.cli import main
from models.kinds import PROBES


@pytest.fixture
def run(settings, engine):
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url, "BCRYPT_ROUNDS": "4"}

    def invoke(*args, input=None):
        return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
    return invoke


def test_user_lifecycle(run):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    r = run("user", "create", name, "--role", "read-only", "--tenant", "cli-tenant", "--password", "pw")
    assert r.exit_code == 0 and f"created {name}" in r.output
    again = run("user", "create", name, "--password", "pw")
    assert again.exit_code == 1 and "already exists" in again.output
    listed = run("user", "list", "--tenant", "cli-tenant")
    assert f"{name}\tread-only\tcli-tenant" in listed.output
    assert run("user", "set-password", name, "--password", "pw2").exit_code == 0
    assert run("user", "delete", name).exit_code == 0
    assert run("user", "delete", name).exit_code == 1


def test_jobs_list_and_watch(run, real_sessions):
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "default")
        job, _ = jobs.create_job(s, tenant_id="default", kind=PROBES["ingest"])
        s.flush()
        jobs.claim(s, job.id, 60)
        jobs.progress(s, job.id, done=3, total=4)
        jobs.fail(s, job.id, "boom", "it broke")
        job_id = job.id
    listed = run("jobs", "list", "--status", "failed", "--limit", "50")
    assert str(job_id) in listed.output and "boom" in listed.output
    watched = run("jobs", "watch", str(job_id), "--interval", "0.05")
    assert watched.exit_code == 1 and "FAILED" in watched.output and "boom: it broke" in watched.output
    assert run("jobs", "watch", "not-an-id").exit_code == 1


def test_migrate_is_idempotent(run):
    r = run("migrate")
    assert r.exit_code == 0 and "migrations applied" in r.output


def test_ops_status_shows_workers_queues_and_running_jobs(run, real_sessions, redis_client):
    import time

    import orjson

    from workers.heartbeat import WORKERS_KEY
    tenant = f"ops-{uuid.uuid4().hex[:6]}"
    with session_scope(real_sessions) as s:
        ensure_tenant(s, tenant)
        job, _ = jobs.create_job(s, tenant_id=tenant, kind=PROBES["ingest"])
        s.flush()
        jobs.claim(s, job.id, 60)
        jobs.progress(s, job.id, done=30, total=120)
        job_id = job.id
    beat = {"hostname": "cli-alive@host", "pid": 1, "queues": ["ingest"], "job": str(job_id), "kind": "probe.ingest",
            "beat": time.time()}
    old = {**beat, "hostname": "cli-dead@host", "job": None, "beat": time.time() - 600}
    redis_client.hset(WORKERS_KEY, mapping={"cli-alive@host|1": orjson.dumps(beat), "cli-dead@host|1": orjson.dumps(old)})
    try:
        r = run("ops", "status", "--tenant", tenant)
        assert r.exit_code == 0, r.output
        assert "alive  cli-alive@host" in r.output and "DEAD   cli-dead@host" in r.output
        line = next(line for line in r.output.splitlines() if str(job_id) in line and "%" in line)
        assert "[#######" in line and "25.0% 30/120" in line
        assert any(line.strip().startswith("ingest") and "running=1" in line for line in r.output.splitlines())
    finally:
        redis_client.hdel(WORKERS_KEY, "cli-alive@host|1", "cli-dead@host|1")
        with session_scope(real_sessions) as s:
            jobs.cancel(s, job_id)
