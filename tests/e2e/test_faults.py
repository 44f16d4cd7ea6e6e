"""Faults: an embedded PostgreSQL or Redis under `fieldsync serve` killed (SIGKILL) while pushes arrive is
started again by `serve` itself, pushes resume without a restart of `serve`, and every push a client saw
acknowledged is still there; and a worker child killed at the very end of a push job makes the job run
again, a second run that changes nothing. (Its own module: the second test runs its own worker.)"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from web.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "faults-admin-password"


def _call(url, body, token=None, timeout=30):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return None, None


class Pusher(threading.Thread):
    """Pushes one record per transmission, resending the same transmission_id until it is answered 200
    (what a phone does), and keeps the ids of the acknowledged records."""

    def __init__(self, base, token):
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.acked: list[str] = []
        self.failures = 0
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            record = {"observation_id": f"obs-{i}", "form_type": "survey", "form_version": "1",
                      "data": {"i": i}, "created_at": "2024-01-15T10:30:00Z",
                      "updated_at": "2024-01-15T10:30:00Z", "deleted": False}
            body = {"transmission_id": f"tx-{i}", "client_id": "phone-1", "records": [record]}
            while not self.stop.is_set():
                status, answer = _call(f"{self.base}/sync/push", body, self.token)
                if status == 200 and answer.get("success_count") == 1:
                    self.acked.append(record["observation_id"])
                    break
                self.failures += 1
                time.sleep(0.3)
            i += 1


def _wait(predicate, timeout, message, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {message}; serve's output ends:\n"
                         + log_path.read_text(errors="replace")[-4000:])


def _pull_all(base, token):
    seen, version = set(), 0
    for _ in range(100):
        status, page = _call(f"{base}/sync/pull?limit=500", {"client_id": "checker", "since": {"version": version}},
                             token)
        assert status == 200
        seen.update(r["observation_id"] for r in page["records"])
        version = page["change_cutoff"]
        if not page["has_more"]:
            return seen
    raise AssertionError("pull did not end")


@pytest.mark.timeout(280)
def test_killed_embedded_engines_are_restarted_and_nothing_acknowledged_is_lost(tmp_path):
    data_dir = tmp_path / "serve-data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET",
                                                             "ADMIN_USERNAME")}
    # A job whose worker met the dead database may keep its lease until the sweeper reclaims it: short
    # leases and sweeps keep that wait within the test's bounds.
    env.update(PYTHONPATH=str(ROOT), ADMIN_PASSWORD=ADMIN_PASSWORD, BCRYPT_ROUNDS="4", SYNC_WAIT_SECONDS="10",
               JOB_LEASE_SECONDS="5", REQUEUE_AFTER_SECONDS="3", SWEEP_INTERVAL_SECONDS="1")
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
    serve = subprocess.Popen([sys.executable, "-m", "web.cli", "serve", "--port", str(port),
                              "--data-dir", str(data_dir)], env=env, cwd=tmp_path, stdout=log,
                             stderr=subprocess.STDOUT)
    pusher = None
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=3) as r:
                    return r.status == 200
            except OSError:
                return False
        _wait(lambda: serve.poll() is not None or healthy(), 150, "serve to start", log_path)
        assert serve.poll() is None, log_path.read_text()[-4000:]
        status, tokens = _call(f"{base}/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        assert status == 200, log_path.read_text()[-3000:]
        status, _ = _call(f"{base}/users/create", {"username": "field1", "password": "field-pw",
                                                   "role": "read-write"}, tokens["token"])
        assert status == 201
        _, tokens = _call(f"{base}/auth/login", {"username": "field1", "password": "field-pw"})
        pusher = Pusher(base, tokens["token"])
        pusher.start()
        _wait(lambda: len(pusher.acked) >= 5, 60, "the first pushes", log_path)

        # PostgreSQL: SIGKILL the postmaster while pushes arrive
        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        at_kill = len(pusher.acked)
        _wait(lambda: len(pusher.acked) >= at_kill + 8, 90,
              "pushes after PostgreSQL was killed", log_path)
        assert serve.poll() is None
        new_postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        assert new_postmaster != postmaster and psutil.pid_exists(new_postmaster)

        # Redis: SIGKILL it too
        redis_proc = [c for c in psutil.Process(serve.pid).children() if "redis" in c.name()]
        assert len(redis_proc) == 1
        redis_proc[0].kill()
        at_kill = len(pusher.acked)
        _wait(lambda: len(pusher.acked) >= at_kill + 8, 90,
              "pushes after Redis was killed", log_path)
        assert serve.poll() is None, "serve itself must keep running"

        pusher.stop.set()
        pusher.join(40)
        assert not pusher.is_alive()
        output = log_path.read_text()
        assert "postgresql is not running; restarting it" in output and "postgresql restarted" in output
        assert "redis is not running; restarting it" in output and "redis restarted" in output
        assert pusher.failures > 0, "the kills must have been seen by the client"
        missing = set(pusher.acked) - _pull_all(base, tokens["token"])
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
    finally:
        if pusher is not None:
            pusher.stop.set()
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait(10)
        log.close()
    assert serve.returncode == 0, log_path.read_text()[-3000:]


# --- a worker child killed at the very end of a job -------------------------------------------------------

STALL_FINISH = """
CREATE OR REPLACE FUNCTION fs_test_stall_finish() RETURNS trigger AS $$
BEGIN
  IF OLD.status = 'RUNNING' AND NEW.status = 'COMPLETED' AND NEW.tenant_id = '{tenant}'
     AND NEW.kind = 'synkronus.push' AND NEW.attempts = 1 THEN  -- the first run only
    PERFORM pg_sleep(4);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER fs_test_stall_finish BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION fs_test_stall_finish();
"""


@pytest.mark.timeout(150)
def test_a_push_whose_worker_died_in_its_last_transaction_is_applied_once_by_the_rerun(
        settings, engine, real_sessions, celery_app, redis_client):
    """The worker child dies in the push's last transaction, the one that holds the apply, the answer and
    the job's end together: none of it is committed, the job runs again while the client waits, and
    the client's answer comes from that run: no record applied twice, one index job, and a resend gets
    the same answer."""
    import uuid as uuid_lib

    from sqlalchemy import text

    from models.db import session_scope
    from models.tables import Job
    from tests.conftest import WorkerProcess, wait_for
    from tests.factories import bearer, make_user
    from web.app import create_app

    tenant = f"end-{uuid_lib.uuid4().hex[:8]}"
    redis_client.flushdb()
    short = settings.replace(job_lease_seconds=3, sync_wait_seconds=15)
    app = create_app(short, session_factory=real_sessions, celery_app=celery_app, redis_client=redis_client)
    app.testing = True
    with session_scope(real_sessions) as s:
        user = make_user(s, tenant=tenant)
    headers = bearer(app, user)
    body = {"transmission_id": "tx-end", "client_id": "phone-end", "records": [
        {"observation_id": "obs-end", "form_type": "survey", "form_version": "1", "data": {"q": 1},
         "created_at": "2024-01-15T10:30:00Z", "updated_at": "2024-01-15T10:30:00Z", "deleted": False}]}

    with engine.begin() as conn:
        conn.execute(text(STALL_FINISH.format(tenant=tenant)))
    worker = WorkerProcess(short, queues=("ingest", "index"), concurrency=1,
                           extra_env={"JOB_LEASE_SECONDS": "3"}).start()
    answer = {}
    pushing = threading.Thread(target=lambda: answer.update(r=app.test_client().post("/sync/push", json=body,
                                                                                     headers=headers)))
    try:
        pushing.start()

        def stalled_finish():
            with engine.connect() as conn:
                return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                                         "AND datname = current_database()")).scalar_one()
        wait_for(stalled_finish, 40, interval=0.05, message="the push job's finish:\n" + worker.tail())
        children = worker.child_pids()
        assert len(children) == 1
        os.kill(children[0], signal.SIGKILL)  # the pool child running the job, at its very end
        from workers.sweeper import sweep_once
        deadline = time.monotonic() + 30
        while pushing.is_alive() and time.monotonic() < deadline:
            sweep_once(celery_app.runtime, celery_app)  # reclaims the dead run's job once its lease ends
            pushing.join(0.5)
        assert answer["r"].status_code == 200, answer["r"].get_data(as_text=True)
        first_answer = answer["r"].get_data()
        with engine.begin() as conn:  # waits for the killed run's stalled transaction to end
            conn.execute(text("DROP TRIGGER fs_test_stall_finish ON jobs; DROP FUNCTION fs_test_stall_finish()"))

        def jobs_of_tenant():
            with session_scope(real_sessions) as s:
                return {j.kind: (j.status, j.attempts, j.id)
                        for j in s.query(Job).filter(Job.tenant_id == tenant)}, \
                    s.query(Job).filter(Job.tenant_id == tenant).count()

        def rerun_done():
            from workers.sweeper import sweep_once
            sweep_once(celery_app.runtime, celery_app)  # reclaims the dead run's job once its lease ends
            kinds, _ = jobs_of_tenant()
            return kinds.get("synkronus.push", ("",))[0] == "COMPLETED" and \
                kinds.get("engine.index", ("",))[0] == "COMPLETED"
        wait_for(rerun_done, 60, interval=0.5, message="the re-run:\n" + worker.tail())
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER IF EXISTS fs_test_stall_finish ON jobs; "
                              "DROP FUNCTION IF EXISTS fs_test_stall_finish()"))
        worker.stop()
    kinds, total_jobs = jobs_of_tenant()
    push_status, push_attempts, push_id = kinds["synkronus.push"]
    assert push_attempts >= 2, "the job must have been run again"
    # one fan-out: a single index job (a killed pool may hand it out twice; its watermark makes a second
    # run fold nothing, which the type count below shows)
    assert total_jobs == 2 and kinds["engine.index"][0] == "COMPLETED"
    with engine.connect() as conn:
        changes = conn.execute(text("SELECT count(*) FROM record_changes WHERE job_id = :j"), {"j": push_id}).scalar()
        records = conn.execute(text("SELECT count(*) FROM records WHERE tenant_id = :t"), {"t": tenant}).scalar()
        counted = conn.execute(text("SELECT sum(live) FROM read_type_counts WHERE tenant_id = :t"),
                               {"t": tenant}).scalar()
    assert (changes, records, counted) == (1, 1, 1)
    # and the answer a client gets by resending is the one it already had
    replay = app.test_client().post("/sync/push", json=body, headers=headers)
    assert replay.status_code == 200 and replay.get_data() == first_answer
