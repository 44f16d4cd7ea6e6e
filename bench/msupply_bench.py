"""mSupply benchmark: initial dump of N records into one site's queue (against the same machine's raw
INSERT … SELECT), a satellite's pull-and-ack loop at limit 500, and pushes of v3 records in batches of
500 through the web view and a real Celery worker, end to end (until every push job has applied).
Prints records/s for each.

    .venv/bin/python bench/msupply_bench.py --server postgresql://postgres@127.0.0.1:5432/test \
        --db msb_bench --redis redis://127.0.0.1:6379/14

It drops and recreates the named database (never the server's others)."""
from __future__ import annotations

import argparse
import base64
import csv
import io
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg2
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import raw_copy_rate  # noqa: E402
from config.settings import Settings  # noqa: E402
from models.msupply import store as msupply  # noqa: E402
from models.db import make_engine, make_session_factory, session_scope  # noqa: E402
from models.engine import current_version  # noqa: E402
from models.migrate import upgrade  # noqa: E402
from models.users import ensure_tenant  # noqa: E402
from models.msupply import INITIAL_DUMP

TENANT = "bench"
PASSWORD = "bench-pw"


def _db_url(server: str, name: str) -> str:
    p = urlsplit(server)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def recreate(server: str, name: str) -> str:
    admin = psycopg2.connect(server)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return _db_url(server, name)


def seed(sessions, n: int) -> None:
    """n records the dumping site may all see: 60% master data (item), 40% its store's lines.
    Written set-based straight into the records table (seeding is not what is measured)."""
    with session_scope(sessions) as s:
        ensure_tenant(s, TENANT)
        s.execute(text("""
            INSERT INTO records (tenant_id, namespace, record_key, record_type, data, meta, content_hash, version,
                                 created_at, updated_at)
            SELECT :t, 'msupply', rt || ':' || id, rt,
                   CASE WHEN rt = 'item'
                        THEN jsonb_build_object('ID', id, 'item_name', 'Item ' || g, 'code', 'C' || g)
                        ELSE jsonb_build_object('ID', id, 'transaction_ID', 'T' || (g / 10), 'store_ID', 'STORE_A',
                                                'quantity', (g % 50)::text) END,
                   jsonb_build_object('store_id', CASE WHEN rt = 'item' THEN '' ELSE 'STORE_A' END),
                   md5(id), g + 1, now(), now()
              FROM (SELECT g, md5(g::text) AS id, CASE WHEN g % 10 < 6 THEN 'item' ELSE 'trans_line' END AS rt
                      FROM generate_series(1, :n) g) x
        """), {"t": TENANT, "n": n})
        s.execute(text("INSERT INTO sync_counters (tenant_id, value) VALUES (:t, :v) "
                       "ON CONFLICT (tenant_id) DO UPDATE SET value = EXCLUDED.value"), {"t": TENANT, "v": n + 2})
        for site_id, store in ((4, "STORE_A"), (5, "STORE_A"), (6, "STORE_B")):
            msupply.create_site(s, tenant_id=TENANT, site_id=site_id, name=f"BenchSat{site_id}", password=PASSWORD,
                                rounds=4, store_id=store)
        s.execute(text("ANALYZE records"))


def raw_insert_select(sessions, n: int) -> float:
    """The machine's raw rate: the same rows into a table shaped and indexed like the queue."""
    with session_scope(sessions) as s:
        s.execute(text("CREATE TABLE bench_raw_queue (LIKE msupply_queue INCLUDING ALL)"))
    started = time.perf_counter()
    with session_scope(sessions) as s:
        s.execute(text("""
            INSERT INTO bench_raw_queue (tenant_id, site_id, id, sync_id, record_key, record_type, record_id,
                                         sync_type, store_id, version)
            SELECT tenant_id, 4, version, md5(record_key), record_key, record_type, record_key, 'I', '', version
              FROM records WHERE tenant_id = :t AND namespace = 'msupply'
        """), {"t": TENANT})
    elapsed = time.perf_counter() - started
    with session_scope(sessions) as s:
        s.execute(text("DROP TABLE bench_raw_queue"))
    return n / elapsed


def run_dump(settings, sessions) -> tuple[int, float]:
    from models import jobs
    from workers.runner import run_job
    from workers.runtime import Runtime
    with session_scope(sessions) as s:
        job, _ = jobs.create_job(s, tenant_id=TENANT, kind=INITIAL_DUMP,
                                 params={"site_id": 4, "full": True, "upto": current_version(s, TENANT)})
    started = time.perf_counter()
    outcome = run_job(Runtime(settings, sessions), job.id)
    elapsed = time.perf_counter() - started
    assert outcome == "completed", outcome
    with session_scope(sessions) as s:
        queued = msupply.queue_count(s, TENANT, 4)
    return queued, elapsed


def _auth(site_id: int, device: str) -> dict:
    secret = hashlib.sha256(PASSWORD.encode()).hexdigest()
    token = base64.b64encode(f"BenchSat{site_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}", "msupply-site-uuid": device}


def raw_pull_rate(url: str, max_records: int) -> float:
    """The machine's raw rate for the same work without HTTP, authentication or the app: pages of 500 of
    a copy of site 4's queue (same primary key and SyncID index) read by keyset with each record's data
    as text, then deleted by SyncID and committed, in one connection. Measured in the same run so the
    pull's rate is read as a ratio on a shared machine."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_raw_pull")
            cur.execute("CREATE TABLE bench_raw_pull (LIKE msupply_queue INCLUDING ALL)")
            cur.execute("INSERT INTO bench_raw_pull SELECT * FROM msupply_queue WHERE tenant_id = %s AND site_id = 4 "
                        "ORDER BY id LIMIT %s", (TENANT, max_records))
            cur.execute("ANALYZE bench_raw_pull")
        conn.commit()
        got = 0
        started = time.perf_counter()
        with conn.cursor() as cur:
            while got < max_records:
                cur.execute("""
                    SELECT q.sync_id, q.record_type, q.record_id, q.sync_type, q.store_id, r.data_text
                      FROM (SELECT * FROM bench_raw_pull WHERE tenant_id = %s AND site_id = 4 ORDER BY id LIMIT 500) q
                      LEFT JOIN LATERAL (SELECT data::text AS data_text FROM records
                                          WHERE tenant_id = %s AND namespace = 'msupply' AND record_key = q.record_key
                                          LIMIT 1) r ON true
                     ORDER BY q.id""", (TENANT, TENANT))
                rows = cur.fetchall()
                conn.commit()
                if not rows:
                    break
                cur.execute("DELETE FROM bench_raw_pull WHERE tenant_id = %s AND site_id = 4 AND sync_id = ANY(%s)",
                            (TENANT, [r[0] for r in rows]))
                conn.commit()
                got += len(rows)
        elapsed = time.perf_counter() - started
        with conn.cursor() as cur:
            cur.execute("DROP TABLE bench_raw_pull")
        conn.commit()
        return got / elapsed
    finally:
        conn.close()


def pull_and_ack(app, max_records: int) -> tuple[int, float]:
    client = app.test_client()
    headers = _auth(4, "bench-device-4")
    got, target = 0, 0
    started = time.perf_counter()
    while got < max_records:
        if got >= target:  # like the mobile app: ask for the count again when progress reaches it
            target = got + client.get("/sync/v3/queued_records/count?from_site=4&to_site=1",
                                      headers=headers).get_json()["NumRecords"]
        batch = client.get("/sync/v3/queued_records?from_site=4&to_site=1&limit=500", headers=headers).get_json()
        if not batch:
            break
        resp = client.post("/sync/v3/acknowledged_records?from_site=4&to_site=1", headers=headers,
                           json={"SyncRecordIDs": [r["SyncID"] for r in batch]})
        assert resp.status_code == 200
        got += len(batch)
    return got, time.perf_counter() - started


def push_records(total: int) -> list[dict]:
    records = []
    for _ in range(total):
        rid = uuid.uuid4().hex
        records.append({"SyncID": uuid.uuid4().hex, "RecordType": "trans_line", "RecordID": rid, "SyncType": "I",
                        "StoreID": "STORE_A", "Data": {"ID": rid, "transaction_ID": "T1", "store_ID": "STORE_A",
                                                       "quantity": "3", "item_name": "Amoxicillin"}})
    return records


def copy_rate(url: str, records: list[dict]) -> float:
    """Raw COPY of the same records, as rows of the records table (same indexes), in the same run."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for i, rec in enumerate(records):
        writer.writerow([TENANT, "msupply", f"trans_line:{rec['RecordID']}", "trans_line", "1",
                         orjson.dumps(rec["Data"]).decode(), '{"store_id": "STORE_A"}', uuid.uuid4().hex * 2, "f",
                         "", "site:5", i + 10_000_000, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "", ""])
    return raw_copy_rate(url, buf, len(records))


def push(app, sessions, records: list[dict], batch: int) -> tuple[int, float, float]:
    """Push the records in batches from one client, then wait until every push job has ended (applied
    and fanned out). Returns (records, seconds until the last answer, seconds until the last job
    ended): the end-to-end figure is the second, from the first push to the last record applied."""
    client = app.test_client()
    headers = _auth(5, "bench-device-5")
    sent = 0
    started = time.perf_counter()
    while sent < len(records):
        resp = client.post("/sync/v3/queued_records?from_site=5&to_site=1", headers=headers,
                           json=records[sent:sent + batch])
        assert resp.status_code == 200 and resp.get_json() == {}, resp.get_data(as_text=True)
        sent += batch
    answered = time.perf_counter() - started
    while True:
        with session_scope(sessions) as s:
            open_jobs = s.execute(text("SELECT count(*) FROM jobs WHERE kind = 'msupply.push' "
                                       "AND status IN ('QUEUED', 'RUNNING')")).scalar()
        if not open_jobs:
            break
        time.sleep(0.01)
    return sent, answered, time.perf_counter() - started


def start_worker(settings) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
               FIELDSYNC_DATA_DIR=str(settings.data_dir), JWT_SECRET=settings.jwt_secret, LOG_JSON="false",
               PYTHONPATH=str(ROOT))
    log = open(Path(settings.data_dir) / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues",
                             "ingest,exports", "--concurrency", "2", "--loglevel", "WARNING", "--without-gossip",
                             "--without-mingle", "--without-heartbeat", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(6)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="PostgreSQL server URL (any database on it)")
    parser.add_argument("--db", default="msb_bench")
    parser.add_argument("--redis", required=True)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pull", type=int, default=1_000_000, help="records to pull and ack (at most)")
    parser.add_argument("--push", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--raw-pull", type=int, default=50_000,
                        help="records of the raw read-and-delete baseline, run before and after the pull")
    args = parser.parse_args()

    url = recreate(args.server, args.db)
    data_dir = Path(tempfile.mkdtemp(prefix="msb-"))
    settings = Settings(database_url=url, redis_url=args.redis, data_dir=data_dir, bcrypt_rounds=4,
                        jwt_secret="bench-" + uuid.uuid4().hex,
                        log_json=False, sync_wait_seconds=60)
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)

    t0 = time.perf_counter()
    seed(sessions, args.records)
    print(f"seeded {args.records} records in {time.perf_counter() - t0:.1f}s", flush=True)

    raw = raw_insert_select(sessions, args.records)
    print(f"raw INSERT … SELECT into a queue-shaped table: {raw:,.0f} records/s", flush=True)
    queued, elapsed = run_dump(settings, sessions)
    print(f"initial dump: {queued} records queued in {elapsed:.1f}s = {queued / elapsed:,.0f} records/s; "
          f"ratio to raw {queued / elapsed / raw:.2f}", flush=True)

    from web.app import create_app
    import redis as redis_lib
    from workers.app import make_celery
    # the app as a server builds it: its own engines (the autocommit pool for one-statement views) and
    # device activity recorded by its writer thread
    app = create_app(settings, celery_app=make_celery(settings), redis_client=redis_lib.Redis.from_url(args.redis))
    raw_before = raw_pull_rate(url, min(args.pull, args.raw_pull))
    pulled, elapsed = pull_and_ack(app, args.pull)
    left = min(args.pull, args.raw_pull, queued - pulled)
    raw_after = raw_pull_rate(url, left) if left >= 500 else raw_before  # the queue left to copy, if any
    raw_pull = 2 / (1 / raw_before + 1 / raw_after)  # the harmonic mean: both runs weigh by their time
    print(f"pull-and-ack at limit 500: {pulled} records in {elapsed:.1f}s = {pulled / elapsed:,.0f} records/s; "
          f"raw SQL read-and-delete of the same pages {raw_pull:,.0f} records/s (before {raw_before:,.0f}, "
          f"after {raw_after:,.0f}); ratio {pulled / elapsed / raw_pull:.2f}", flush=True)

    records = push_records(args.push)
    copied = copy_rate(url, records)
    worker = start_worker(settings)
    try:
        pushed, answered, elapsed = push(app, sessions, records, args.batch)
        print(f"push v3 in batches of {args.batch}, end to end (first push until every push job has ended, "
              f"applied and fanned out): {pushed} records in {elapsed:.1f}s = {pushed / elapsed:,.0f} records/s "
              f"(last answer after {answered:.1f}s); raw COPY of the same rows {copied:,.0f} records/s; "
              f"ratio {pushed / elapsed / copied:.2f}", flush=True)
        with session_scope(sessions) as s:
            failed = s.execute(text("SELECT count(*) FROM jobs WHERE kind = 'msupply.push' AND status <> 'COMPLETED'")
                               ).scalar()
            fanned = msupply.queue_count(s, TENANT, 4)
        print(f"push jobs not completed: {failed}; records fanned out to site 4's queue: {fanned}", flush=True)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
    engine.dispose()


if __name__ == "__main__":
    main()
