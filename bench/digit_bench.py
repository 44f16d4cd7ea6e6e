"""Benchmark of the DIGIT sync-file path (issue 5).

For each size it generates a sync file of households and individuals (~0.5 KB each, half and half),
stores it in the filestore, then times `POST /sync/file/v1/_create` until the sync is COMPLETED, with a
fresh Celery worker (one process) per size whose peak RSS is sampled throughout. In the same run it
measures the raw COPY rate of the same rows into a copy of the `records` table, as the ceiling.

    createdb -h 127.0.0.1 -U postgres dgb_bench
    .venv/bin/python bench/digit_bench.py --database-url postgresql://postgres@127.0.0.1:5432/dgb_bench \
        --redis-url redis://127.0.0.1:6379/13 --sizes 100000,1000000

Beside the rates (and their ratio, `of_copy`) it prints the CPU seconds of the worker child and of the
database's server processes during the sync, and of the server process during the raw COPY: figures the
other load on a shared machine disturbs less. The upload itself is outside the timed window (it is the
filestore's cost, not the sync's). Forms are published for both schemas, so every entity is validated. The scheduler's periodic maintenance runs
beside the worker, as in the production layout (`--no-maintenance` to leave it out)."""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402
import redis as redis_lib  # noqa: E402

from config.settings import Settings  # noqa: E402


def household(i: int) -> dict:
    return {
        "clientReferenceId": f"hh-{i:09d}-{uuid.UUID(int=i).hex[:12]}", "tenantId": "default",
        "memberCount": 1 + i % 9, "firstName": f"Head{i}", "mobileNumber": f"9{i % 10**9:09d}",
        "address": {"locality": {"code": f"LOC{i % 500}"}, "addressLine1": f"House {i}, Ward {i % 40}",
                    "city": "Chimoio", "latitude": -19.1 + (i % 1000) / 1e4, "longitude": 33.4 + (i % 700) / 1e4,
                    "type": "PERMANENT"},
        "rowVersion": 1, "isDeleted": False,
        "auditDetails": {"createdBy": "5a2c1f7e-0d3b-4c55-9a9e-6f0f7b1c2d3e", "createdTime": 1700000000000 + i,
                         "lastModifiedBy": "5a2c1f7e-0d3b-4c55-9a9e-6f0f7b1c2d3e",
                         "lastModifiedTime": 1700000000000 + i},
        "additionalFields": {"schema": "Household", "version": 1,
                             "fields": [{"key": "bednets", "value": str(i % 4)}, {"key": "pets", "value": "no"}]},
    }


def individual(i: int) -> dict:
    return {
        "clientReferenceId": f"ind-{i:09d}-{uuid.UUID(int=i).hex[:12]}", "tenantId": "default",
        "name": {"givenName": f"Given{i}", "familyName": f"Family{i % 3000}"}, "age": 1 + i % 90,
        "gender": "MALE" if i % 2 else "FEMALE", "dateOfBirth": "1990-01-01", "mobileNumber": f"8{i % 10**9:09d}",
        "identifiers": [{"identifierType": "SYSTEM_GENERATED", "identifierId": f"ID-{i:010d}"}],
        "householdClientReferenceId": f"hh-{i:09d}", "rowVersion": 1, "isDeleted": False,
        "auditDetails": {"createdBy": "5a2c1f7e-0d3b-4c55-9a9e-6f0f7b1c2d3e", "createdTime": 1700000000000 + i,
                         "lastModifiedBy": "5a2c1f7e-0d3b-4c55-9a9e-6f0f7b1c2d3e",
                         "lastModifiedTime": 1700000000000 + i},
    }


FORMS = [
    {"schema": "household", "elements": [
        {"key": "firstName", "dataType": "text", "validations": [{"name": "required", "attribute": True},
                                                                 {"name": "max", "attribute": 40}]},
        {"key": "memberCount", "dataType": "integer", "validations": [{"name": "min", "attribute": 1},
                                                                      {"name": "max", "attribute": 30}]},
        {"key": "mobileNumber", "dataType": "text", "validations": [{"name": "pattern", "attribute": "[0-9]{10}"}]},
        {"key": "address.locality.code", "dataType": "text", "validations": [{"name": "required", "attribute": True}]}]},
    {"schema": "individual", "elements": [
        {"key": "age", "dataType": "integer", "validations": [{"name": "maxValue", "attribute": 150}]},
        {"key": "gender", "dataType": "text", "validations": [{"name": "allowedValues",
                                                               "attribute": ["MALE", "FEMALE", "OTHER"]}]}]},
]


def generate(path: Path, n: int, fmt: str) -> None:
    """n entities, alternating household / individual."""
    with open(path, "wb", buffering=1 << 20) as f:
        if fmt == "ndjson":
            for i in range(n):
                schema, entity = ("household", household(i)) if i % 2 == 0 else ("individual", individual(i))
                f.write(orjson.dumps({"schema": schema, "data": entity}) + b"\n")
        else:
            f.write(b'{"entities": {"household": [')
            for k, i in enumerate(range(0, n, 2)):
                f.write((b"," if k else b"") + orjson.dumps(household(i)))
            f.write(b'], "individual": [')
            for k, i in enumerate(range(1, n, 2)):
                f.write((b"," if k else b"") + orjson.dumps(individual(i)))
            f.write(b"]}}")


class RssSampler(threading.Thread):
    """Peak RSS of a process tree (the worker parent and its pool children), sampled every 100 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak_child = 0
        self.peak_tree = 0
        self.cpu_child = 0.0  # CPU seconds of the busiest pool child (the one that ran the sync)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
                sizes = {}
                for p in procs:
                    try:
                        sizes[p.pid] = p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak_tree = max(self.peak_tree, sum(sizes.values()))
                children = [v for k, v in sizes.items() if k != self.root.pid]
                if children:
                    self.peak_child = max(self.peak_child, max(children))
                for p in procs[1:]:
                    try:
                        times = p.cpu_times()
                        self.cpu_child = max(self.cpu_child, times.user + times.system)
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.stop.wait(0.1)


class Maintenance(threading.Thread):
    """What the production scheduler process does beside the sweeper (workers.schedule.run_due, every
    sweep interval): among other things it refreshes planner statistics of tables that a bulk load
    outgrew, which the engine's per-chunk merge relies on."""

    def __init__(self, runtime, interval: float):
        super().__init__(daemon=True)
        self.runtime, self.interval = runtime, interval
        self.stop = threading.Event()

    def run(self):
        from workers.schedule import run_due
        while not self.stop.wait(self.interval):
            run_due(self.runtime, None)


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
               FIELDSYNC_DATA_DIR=str(settings.data_dir), JWT_SECRET=settings.jwt_secret, LOG_JSON="false",
               LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues", "ingest",
         "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("worker did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    import signal
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def backends_cpu(engine) -> dict[int, float]:
    """CPU seconds used so far by each of the database's server processes (PostgreSQL on this machine;
    empty otherwise). Taken before and after a sync, beside the wall-clock rate: a figure the other load
    on a shared machine disturbs less."""
    from sqlalchemy import text
    with engine.connect() as conn:
        pids = [row[0] for row in conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))]
    found = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return {}
        found[pid] = times.user + times.system
    return found


def copy_rate(engine, path: Path, n: int, tmp_dir: Path) -> tuple[float, float | None]:
    """(rows/s, server CPU seconds) of a plain COPY of the same rows into a copy of `records` (indexes included)."""
    from sqlalchemy import text
    csv_path = tmp_dir / "copy.csv"
    now = "2024-01-01T00:00:00+00:00"
    with open(path, "rb") as src, open(csv_path, "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for version, line in enumerate(src, start=1):
            row = orjson.loads(line)
            data = orjson.dumps(row["data"]).decode()
            writer.writerow(["bench", "digit", f"COPY:{row['schema']}:{row['data']['clientReferenceId']}",
                             row["schema"], "1", data, '{"campaignId": "COPY"}',
                             hashlib.sha256(data.encode()).hexdigest(), "f", "", "bench", version, now, now])
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_copy"))
        conn.execute(text("CREATE TABLE bench_copy (LIKE records INCLUDING ALL)"))
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, open(csv_path) as f:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
            raw.commit()
            cpu_before = _process_cpu(backend)
            started = time.perf_counter()
            cur.copy_expert("COPY bench_copy (tenant_id, namespace, record_key, record_type, schema_version, data, "
                            "meta, content_hash, deleted, geolocation, origin, version, created_at, updated_at) "
                            "FROM STDIN WITH (FORMAT csv)", f)
            raw.commit()
            elapsed = time.perf_counter() - started
            cpu_after = _process_cpu(backend)
            cur.execute("DROP TABLE bench_copy")
            raw.commit()
    finally:
        raw.close()
        csv_path.unlink()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return n / elapsed, cpu


def _process_cpu(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def run_size(app, settings, engine, user_token, n: int, fmt: str, work_dir: Path, maintenance: bool) -> dict:
    from models.digit import store as digit
    from models.blobs import BlobStore
    from models.db import make_session_factory, session_scope
    path = work_dir / f"bench-{n}.{fmt}"
    started = time.perf_counter()
    generate(path, n, fmt)
    generated = time.perf_counter() - started
    size = path.stat().st_size
    with open(path, "rb") as f:
        sha, _ = BlobStore(settings.blob_dir).put_stream(f)
    campaign = f"BENCH-{n}-{uuid.uuid4().hex[:6]}"
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        for form in FORMS:
            digit.publish_form(s, {**form, "campaignId": campaign, "tenantId": "default", "version": 1})
        stored = digit.add_file(s, tenant_id="default", sha256=sha, size=size, filename=path.name,
                                content_type="application/x-ndjson", created_by=None)
        file_id = str(stored.id)

    worker = start_worker(settings, work_dir / f"worker-{n}.log")
    sampler = RssSampler(worker.pid)
    sampler.start()
    scheduler = None
    if maintenance:
        from workers.runtime import Runtime
        scheduler = Maintenance(Runtime(settings, sessions), settings.sweep_interval_seconds)
        scheduler.start()
    client = app.test_client()
    progress_samples = []
    try:
        db_before = backends_cpu(engine)
        t0 = time.perf_counter()
        resp = client.post("/sync/file/v1/_create", json={
            "requestInfo": {"authToken": user_token, "msgId": "bench"},
            "sync": {"campaignId": campaign, "tenantId": "default", "file": file_id}})
        assert resp.status_code == 200, resp.get_json()
        sync_id = resp.get_json()["sync"]["syncId"]
        while True:
            resp = client.post("/sync/file/status/v1/_search", json={
                "requestInfo": {"authToken": user_token},
                "sync": {"tenantId": "default", "campaignId": campaign, "syncId": sync_id}})
            sync = resp.get_json()["sync"]
            progress_samples.append((round(time.perf_counter() - t0, 1), sync["progress"]["done"]))
            if sync["status"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - t0
        db_after = backends_cpu(engine)
        db_cpu = sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()) if db_after else None
    finally:
        sampler.stop.set()
        sampler.join()
        if scheduler is not None:
            scheduler.stop.set()
        stop_worker(worker)
    if sync["status"] != "COMPLETED":
        raise RuntimeError(f"sync failed: {sync.get('failure')}")
    first_progress = next((t for t, done in progress_samples if done > 0), None)
    rate_copy, copy_cpu = copy_rate(engine, path, n, work_dir) if fmt == "ndjson" else (None, None)
    path.unlink()
    return {"entities": n, "format": fmt, "file_mb": round(size / 1e6, 1), "generate_s": round(generated, 1),
            "end_to_end_s": round(elapsed, 1), "entities_per_s": round(n / elapsed),
            "first_progress_after_s": first_progress, "counts": sync["counts"],
            "worker_peak_rss_child_mb": round(sampler.peak_child / 2**20, 1),
            "worker_peak_rss_tree_mb": round(sampler.peak_tree / 2**20, 1),
            "worker_cpu_s": round(sampler.cpu_child, 1), "db_backends_cpu_s": None if db_cpu is None else round(db_cpu, 1),
            "raw_copy_rows_per_s": None if rate_copy is None else round(rate_copy),
            "of_copy": None if rate_copy is None else round(n / elapsed / rate_copy, 2),
            "copy_db_cpu_s": None if copy_cpu is None else round(copy_cpu, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--format", choices=("ndjson", "json"), default="ndjson")
    parser.add_argument("--data-dir", default="/tmp/fieldsync-digit-bench")
    parser.add_argument("--no-maintenance", action="store_true",
                        help="do not run the scheduler's periodic maintenance (statistics refresh) meanwhile")
    args = parser.parse_args()

    from flask_jwt_extended import create_access_token

    from models.db import make_engine, make_session_factory, session_scope
    from models.migrate import upgrade
    from models.users import create_user
    from web.app import create_app
    from workers.app import make_celery
    from workers.runtime import Runtime

    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url, data_dir=data_dir,
                        jwt_secret="bench-" + uuid.uuid4().hex, bcrypt_rounds=4, log_json=False)
    redis_lib.Redis.from_url(args.redis_url).flushdb()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        user = create_user(s, username=f"bench-{uuid.uuid4().hex[:6]}", password="pw", role="read-write", rounds=4)
        user_id, username = user.id, user.username
    celery = make_celery(settings, Runtime(settings, sessions))
    app = create_app(settings, session_factory=sessions, celery_app=celery)
    with app.app_context():
        token = create_access_token(identity=str(user_id), additional_claims={
            "username": username, "role": "read-write", "tenant": "default", "typ": "access"})
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        result = run_size(app, settings, engine, token, n, args.format, data_dir, not args.no_maintenance)
        result["maintenance"] = not args.no_maintenance
        print(json.dumps(result), flush=True)
        results.append(result)
    print(json.dumps({"summary": results}, indent=1))


if __name__ == "__main__":
    main()
