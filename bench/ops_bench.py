"""Ops console benchmark: the overview (and the job list, the devices page and a /metrics scrape) with
1,000,000 jobs, 10,000 devices and 50 export schedules in the tables, and the cost one push or pull pays to record its
device. Prints milliseconds (median, p95, max).

    .venv/bin/python bench/ops_bench.py --server postgresql://postgres@127.0.0.1:5432/test \
        --db ops_bench --redis redis://127.0.0.1:6379/4 [--jobs 1000000] [--devices 10000]

It drops and recreates the named database (never the server's others)."""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from config.settings import Settings  # noqa: E402
from models.db import make_engine, make_session_factory, session_scope  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.users import create_user, ensure_tenant  # noqa: E402

TENANTS = [f"t{i}" for i in range(20)] + ["pb", "pb.amritsar", "pb.ludhiana"]


def _database(server: str, name: str) -> str:
    conn = psycopg2.connect(server)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def fill(engine, jobs: int, devices: int) -> None:
    """jobs: about 97 % COMPLETED over 30 days, 2 % FAILED, 1,000 QUEUED, 40 RUNNING; one record error
    per failed job; `devices` devices, a tenth silent for weeks."""
    with engine.begin() as conn:
        for tenant in TENANTS:
            conn.execute(text("INSERT INTO tenants (id, name) VALUES (:t, :t) ON CONFLICT DO NOTHING"), {"t": tenant})
        conn.execute(text("""
            INSERT INTO jobs (id, tenant_id, kind, queue, status, attempts, progress_done, progress_total, counts,
                              params, error_code, error_detail, created_at, updated_at, enqueued_at, started_at,
                              finished_at)
            SELECT gen_random_uuid(), (:tenants)[1 + (g % cardinality(:tenants))],
                   (ARRAY['synkronus.push','msupply.push','digit.sync_file','engine.index','engine.export'])[1 + (g % 5)],
                   (ARRAY['ingest','ingest','ingest','index','exports'])[1 + (g % 5)],
                   CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, 1, 500, 500,
                   '{"accepted": 500}'::jsonb, '{}'::jsonb,
                   CASE WHEN g % 50 = 0 THEN 'internal_error' END, CASE WHEN g % 50 = 0 THEN 'crashed' END,
                   now() - make_interval(secs => (g::float8 / :n) * 30 * 86400),
                   now() - make_interval(secs => (g::float8 / :n) * 30 * 86400),
                   now() - make_interval(secs => (g::float8 / :n) * 30 * 86400),
                   now() - make_interval(secs => (g::float8 / :n) * 30 * 86400),
                   now() - make_interval(secs => (g::float8 / :n) * 30 * 86400 - 2)
              FROM generate_series(1, :n) AS g
        """), {"n": jobs, "tenants": TENANTS})
        conn.execute(text("""
            INSERT INTO jobs (id, tenant_id, kind, queue, status, attempts, progress_done, progress_total,
                              created_at, updated_at, enqueued_at, started_at, lease_until)
            SELECT gen_random_uuid(), (:tenants)[1 + (g % cardinality(:tenants))], 'synkronus.push', 'ingest',
                   CASE WHEN g <= 40 THEN 'RUNNING' ELSE 'QUEUED' END, CASE WHEN g <= 40 THEN 1 ELSE 0 END,
                   g * 10, 10000, now() - make_interval(secs => g), now(), now() - make_interval(secs => g),
                   CASE WHEN g <= 40 THEN now() END, CASE WHEN g <= 40 THEN now() + interval '1 minute' END
              FROM generate_series(1, 1040) AS g
        """), {"tenants": TENANTS})
        conn.execute(text("""
            INSERT INTO job_record_errors (job_id, position, code, message, severity)
            SELECT id, 0, 'invalid_type', 'bad', 'error' FROM jobs WHERE status = 'FAILED'
        """))
        conn.execute(text("""
            INSERT INTO devices (tenant_id, dialect, client_id, app_version, first_seen_at, last_seen_at,
                                 last_push_at, last_pull_at, pushes, pulls, records_pushed, last_pulled_version)
            SELECT (:tenants)[1 + (g % cardinality(:tenants))], (ARRAY['synkronus','msupply','digit'])[1 + (g % 3)],
                   'device-' || g, '2.4.' || (g % 7), now() - interval '60 days',
                   now() - make_interval(secs => CASE WHEN g % 10 = 0 THEN 86400 * 14 ELSE g END),
                   now() - make_interval(secs => g), now() - make_interval(secs => g), 10, 10, 5000, g
              FROM generate_series(1, :d) AS g
        """), {"d": devices, "tenants": TENANTS})
        conn.execute(text("""
            INSERT INTO export_schedules (id, tenant_id, name, cron, spec, target, next_run_at, last_job_id)
            SELECT gen_random_uuid(), (:tenants)[1 + (g % cardinality(:tenants))], 'nightly-' || g, '0 2 * * *',
                   '{"namespace": "msupply"}'::jsonb, 'nightly/' || g, now() + interval '1 day',
                   (SELECT id FROM jobs ORDER BY created_at DESC OFFSET g LIMIT 1)
              FROM generate_series(1, 50) AS g
        """), {"tenants": TENANTS})
        conn.execute(text("INSERT INTO sync_counters (tenant_id, value) SELECT id, 20000 FROM tenants "
                          "ON CONFLICT DO NOTHING"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE jobs"))
        conn.execute(text("VACUUM ANALYZE devices"))
        conn.execute(text("VACUUM ANALYZE job_record_errors"))


def timed(label: str, call, runs: int) -> dict:
    call()  # warm
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    figures = {"median": statistics.median(samples), "p95": percentile(samples, 95), "max": max(samples)}
    print(f"{label:<46} median {figures['median']:7.2f} ms   p95 {figures['p95']:7.2f} ms   max {figures['max']:7.2f} ms")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--db", default="ops_bench")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="keep the database a previous run filled")
    args = parser.parse_args()

    if args.reuse:
        parts = urlsplit(args.server)
        url = urlunsplit((parts.scheme, parts.netloc, "/" + args.db, parts.query, parts.fragment))
        engine = make_engine(url)
    else:
        url = _database(args.server, args.db)
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        fill(engine, args.jobs, args.devices)
        print(f"filled {args.jobs:,} jobs and {args.devices:,} devices in {time.perf_counter() - started:.0f} s")
    with engine.connect() as conn:
        print("jobs in the table:", conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())

    data_dir = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    settings = Settings(database_url=url, redis_url=args.redis, data_dir=data_dir, jwt_secret="bench-secret-x",
                        bcrypt_rounds=4, metrics_token="bench")
    sessions = make_session_factory(engine)
    if not args.reuse:
        with session_scope(sessions) as s:
            create_user(s, username="bench-admin", password="pw", role="admin", is_system=True, rounds=4)
            create_user(s, username="bench-pb", password="pw", role="admin", tenant_id="pb", rounds=4)
            ensure_tenant(s, "t0")

    from web.app import create_app
    from workers.app import make_celery
    app = create_app(settings, session_factory=sessions, celery_app=make_celery(settings))
    print(f"\nweb requests through the app (Flask test client, {args.runs} runs each):")
    for who in ("bench-admin", "bench-pb"):
        client = app.test_client()
        page = client.get("/ops/login").get_data(as_text=True)
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        r = client.post("/ops/login", data={"csrf_token": token, "username": who, "password": "pw"})
        assert r.status_code == 303, r.status_code
        scope = "system admin" if who == "bench-admin" else "tenant admin of pb"
        timed(f"GET /ops/api/overview ({scope})", lambda: _ok(client.get("/ops/api/overview")), args.runs)
        timed(f"GET /ops/ page ({scope})", lambda: _ok(client.get("/ops/")), args.runs)
        timed(f"GET /ops/jobs ({scope})", lambda: _ok(client.get("/ops/jobs")), args.runs)
        timed(f"GET /ops/jobs?status=FAILED ({scope})", lambda: _ok(client.get("/ops/jobs?status=FAILED")), args.runs)
        timed("GET /ops/api/jobs?kind=msupply.push&tenant=t3", lambda: _ok(client.get(
            "/ops/api/jobs?kind=msupply.push&tenant=t3")), args.runs)
        timed(f"GET /ops/devices?silent=true ({scope})", lambda: _ok(client.get("/ops/devices?silent=true")), args.runs)
        timed(f"GET /ops/exports ({scope})", lambda: _ok(client.get("/ops/exports")), args.runs)
    client = app.test_client()
    timed("GET /metrics", lambda: _ok(client.get("/metrics", headers={"Authorization": "Bearer bench"})), args.runs)

    from web.devices import record
    print("\ndevice recording, as the after-request hook does it (web.devices.record: one upsert, its commit):")
    session = sessions()
    counter = iter(range(10**9))

    def record_existing():
        record(session, {"tenant_id": "t0", "dialect": "synkronus", "activity": "push", "records": 500,
                         "client_id": f"known-{next(counter) % 100}", "app_version": "2.4.1"})

    def record_new():
        record(session, {"tenant_id": "t0", "dialect": "synkronus", "activity": "pull", "pulled_version": 5,
                         "client_id": f"new-{next(counter)}"})

    def baseline():  # what the request pays anyway: a transaction of its own
        session.execute(text("SELECT 1"))
        session.rollback()
    for _ in range(100):  # the known devices exist before they are timed
        record_existing()
    base = timed("baseline: an empty transaction (SELECT 1)", baseline, 2000)
    existing = timed("touch a known device (update)", record_existing, 2000)
    new = timed("touch a new device (insert)", record_new, 2000)
    print(f"cost per push or pull: {existing['median']:.3f} ms (a known device), {new['median']:.3f} ms (a new one), "
          f"median over 2,000; {existing['median'] - base['median']:.3f} / {new['median'] - base['median']:.3f} ms "
          f"above an empty transaction")
    session.close()


def _ok(response):
    assert response.status_code == 200, response.status_code
    response.get_data()


if __name__ == "__main__":
    main()
