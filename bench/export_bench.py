"""Export benchmark: Parquet exports of 100k and 1M records through a real exports worker.

For each size it loads N Synkronus observations (~0.75 KB `data`, 15 fields, 5 form types) straight into
the records table of one tenant, then measures, on a fresh `celery worker --queues exports --concurrency 1` per size:

- the engine export (POST /exports' job): rows/s and the worker's peak RSS;
- the Synkronus ZIP (GET /dataexport/parquet's job): seconds and peak RSS;
- in the same run, the raw polars rate: a separate process reads the same rows from PostgreSQL with
  connectorx and writes Parquet with polars, before and after the exports (pooled), (a) the same flat
  columns (the exporter's own SELECT, one form type at a time) and (b) the plain columns with `data` as
  JSON text; rows/s and peak RSS;

and prints each export's rate as a ratio to the raw rates measured in the same run (absolute rates on a
shared machine are noisy; the ratios are the figures), and the peak RSS at each size. It needs the bench
extra (`pip install -e '.[bench]'`: connectorx, psutil).

    python bench/export_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379/3 [--sizes 100000,1000000]

The database named by --database-url is only used to create (and at the end drop) a fresh bench database.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = 15
MIB = 1024 * 1024


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def load(database_url: str, tenant: str, n: int) -> None:
    """N observations of 15 fields (12 strings, an int, a float, a bool) straight into records."""
    import psycopg2
    strings = ", ".join(f"'field_{k:02d}', 'value ' || i || ' {k} ' || repeat('x', 30)" for k in range(FIELDS - 3))
    conn = psycopg2.connect(database_url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant, tenant))
        for start in range(0, n, 100_000):
            cur.execute(f"""
                INSERT INTO records (tenant_id, namespace, record_key, record_type, schema_version, data, meta,
                                     content_hash, deleted, origin, version, created_at, updated_at)
                SELECT %(t)s, 'synkronus', 'bench-' || i, 'form_' || (i %% 5), '1',
                       jsonb_build_object({strings}, 'count', i %% 97, 'score', (i %% 1000) / 7.0, 'ok', i %% 2 = 0),
                       '{{}}', md5(i::text) || md5(i::text), false, 'bench', i + 1,
                       timestamptz '2025-01-01' + make_interval(secs => i), now()
                  FROM generate_series(%(a)s, %(b)s) AS i""", {"t": tenant, "a": start, "b": min(n, start + 100_000) - 1})
        cur.execute("INSERT INTO sync_counters (tenant_id, value) VALUES (%s, %s) ON CONFLICT (tenant_id) DO UPDATE "
                    "SET value = EXCLUDED.value", (tenant, n + 1))
        cur.execute("ANALYZE records")
    conn.close()


class TreeSampler(threading.Thread):
    """Peak RSS of the busiest process of a process tree (the prefork child that runs the job). Each
    process's own high-water mark (VmHWM, reset when sampling starts through /proc/PID/clear_refs) is
    read as well as its RSS every `interval`: a job's peak is a moment, which a poll at 100k (a run of
    a second or two) catches less often than one at 1M, so polled peaks alone grow with the size."""

    def __init__(self, pid: int, interval: float = 0.05):
        super().__init__(daemon=True)
        import psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.hwm_ok = True
        self._halt = threading.Event()
        for proc in self._tree():
            try:
                Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            except OSError:
                self.hwm_ok = False

    def _tree(self):
        try:
            return [self.root] + self.root.children(recursive=True)
        except Exception:
            return [self.root]

    @staticmethod
    def _hwm(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        for proc in self._tree():
            try:
                self.peak = max(self.peak, proc.memory_info().rss, self._hwm(proc.pid) if self.hwm_ok else 0)
            except Exception:
                pass

    def run(self):
        while not self._halt.is_set():
            self._sample()
            time.sleep(self.interval)

    def stop(self):
        self._halt.set()
        self.join()
        self._sample()


def run_job(settings, celery, sessions, worker_pid: int, tenant: str, kind, params: dict) -> tuple[float, int, dict]:
    from models.db import session_scope
    from models.tables import Job
    from workers.api import submit_job
    sampler = TreeSampler(worker_pid)
    sampler.start()
    started = time.perf_counter()
    with session_scope(sessions) as s:
        job, _ = submit_job(s, celery, tenant_id=tenant, kind=kind, params=params)
        job_id = job.id
    while True:
        with session_scope(sessions) as s:
            found = s.get(Job, job_id)
            status, result, error = found.status, found.result, found.error_detail
        if status in ("COMPLETED", "FAILED"):
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    sampler.stop()
    if status != "COMPLETED":
        raise SystemExit(f"{kind.name} failed: {error}")
    return elapsed, sampler.peak, result


def polars_child(args) -> None:
    """Runs in its own process: the raw polars rate (prints JSON: seconds, rows)."""
    import polars as pl
    queries = json.loads(Path(args.queries).read_text())
    out = Path(args.out)
    started = time.perf_counter()
    rows = 0
    for i, sql in enumerate(queries):
        frame = pl.read_database_uri(sql, args.uri, engine="connectorx")
        frame.write_parquet(out / f"{i}.parquet", compression="zstd")
        rows += frame.height
        del frame
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "rows": rows,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def raw_polars(uri: str, queries: list[str], workdir: Path) -> dict:
    qfile = workdir / f"queries-{uuid.uuid4().hex[:6]}.json"
    qfile.write_text(json.dumps(queries))
    out = Path(tempfile.mkdtemp(dir=workdir))
    proc = subprocess.run([sys.executable, __file__, "--polars-child", "--uri", uri, "--queries", str(qfile),
                           "--out", str(out)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit("the polars run failed:\n" + proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def flat_queries(sessions, tenant: str, n: int) -> list[str]:
    """The exporter's own SELECT for each file (the same flat columns), with its parameters inlined."""
    from models import exports as store
    from models.db import session_scope
    from workers.exports import ENGINE_LAYOUT, _fixed, plan_files
    scope = store.Scope(tenant_id=tenant, namespace="synkronus", since=0, until=n + 1)
    queries = []
    with session_scope(sessions) as s:
        files, _, _ = plan_files(s, scope, ENGINE_LAYOUT, ["record_type"], max_columns=1000)
        raw = s.connection().connection.dbapi_connection
        for fp in files:
            sql, params = store.file_select(scope, fixed=[(name, sql) for name, sql, _, _ in _fixed(ENGINE_LAYOUT)],
                                            keys=fp.keys, overflow_keys=fp.overflow, record_type=fp.record_type,
                                            day=None, order_by=ENGINE_LAYOUT.order_by)
            with raw.cursor() as cur:
                queries.append(cur.mogrify(sql, params).decode())
    return queries


def plain_queries(tenant: str) -> list[str]:
    return [f"""SELECT record_key, record_type, schema_version, version, deleted, created_at, updated_at,
                       data::text AS data FROM records WHERE feed_key = '{tenant}:synkronus'
                       AND record_type = 'form_{k}' ORDER BY version""" for k in range(5)]


def start_worker(env: dict, workdir: Path) -> subprocess.Popen:
    """`celery worker --queues exports --concurrency 1`, as the Procfile's worker_exports runs it."""
    log_path = workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
    log = open(log_path, "wb")
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues",
                               "exports", "--concurrency", "1", "--pool", "prefork", "--loglevel", "INFO",
                               "--without-gossip", "--without-mingle", "--without-heartbeat", "--hostname",
                               f"bench-{uuid.uuid4().hex[:6]}@%h"],
                              env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while b"ready." not in log_path.read_bytes():
        if worker.poll() is not None:
            raise SystemExit(log_path.read_text()[-3000:])
        time.sleep(0.2)
    time.sleep(1)
    return worker


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, 15)
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, 9)
        worker.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url")
    ap.add_argument("--redis-url")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    ap.add_argument("--db-prefix", default="fieldsync_export_bench_",
                    help="name prefix of the bench database (a random suffix follows)")
    ap.add_argument("--row-group-rows", type=int, default=None, help="EXPORT_ROW_GROUP_ROWS of the worker")
    ap.add_argument("--polars-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--uri", help=argparse.SUPPRESS)
    ap.add_argument("--queries", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.polars_child:
        polars_child(args)
        return

    import signal

    import psycopg2

    from config.settings import Settings
    from models.db import make_engine, make_session_factory
    from models.kinds import EXPORT
    from models.migrate import upgrade
    from models.synkronus import EXPORT_PARQUET
    from workers.app import make_celery
    from workers.runtime import Runtime

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # clean up (worker, database) when stopped
    sys.stdout.reconfigure(line_buffering=True)
    name = f"{args.db_prefix}{uuid.uuid4().hex[:6]}"
    admin = psycopg2.connect(args.database_url)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    url = _with_db(args.database_url, name)
    workdir = Path(tempfile.mkdtemp(prefix="export-bench-"))
    worker = None
    try:
        engine = make_engine(url)
        upgrade(engine)
        sessions = make_session_factory(engine)
        settings = Settings(database_url=url, redis_url=args.redis_url, data_dir=workdir / "data",
                            jwt_secret=uuid.uuid4().hex, log_json=False)
        celery = make_celery(settings, Runtime(settings, sessions))
        env = dict(os.environ, DATABASE_URL=url, REDIS_URL=args.redis_url, FIELDSYNC_DATA_DIR=str(settings.data_dir),
                   JWT_SECRET=settings.jwt_secret, LOG_JSON="false", PYTHONPATH=str(ROOT))
        if args.row_group_rows:
            env["EXPORT_ROW_GROUP_ROWS"] = str(args.row_group_rows)
        results = {}
        for n in [int(s) for s in args.sizes.split(",")]:
            tenant = f"bench{n}"
            t0 = time.perf_counter()
            load(url, tenant, n)
            print(f"--- {n:,} records (loaded in {time.perf_counter() - t0:.0f} s)")
            worker = start_worker(env, workdir)  # a fresh worker per size: each peak is that size's own
            params = {"namespace": "synkronus", "record_types": [], "since_version": 0, "until": n + 1,
                      "partition_by": ["record_type"]}
            # the raw rates are measured before and after the exports and pooled: on a shared machine the
            # load drifts, and a raw rate taken only on one side of the exports would be biased by it
            queries = flat_queries(sessions, tenant, n), plain_queries(tenant)
            before = [raw_polars(url, q, workdir) for q in queries]
            seconds, peak, result = run_job(settings, celery, sessions, worker.pid, tenant, EXPORT, params)
            size = sum(f["bytes"] for f in result["manifest"]["files"])
            zs, zpeak, zres = run_job(settings, celery, sessions, worker.pid, tenant, EXPORT_PARQUET, {"until": n + 1})
            after = [raw_polars(url, q, workdir) for q in queries]
            flat, plain = ({"rows": a["rows"] + b["rows"], "seconds": a["seconds"] + b["seconds"],
                            "peak_rss": max(a["peak_rss"], b["peak_rss"])} for a, b in zip(before, after))
            for label, b, a in zip(("flat columns", "JSON text"), before, after):
                print(f"raw polars ({label}) before the exports {b['rows'] / b['seconds']:,.0f} rows/s, "
                      f"after {a['rows'] / a['seconds']:,.0f} rows/s")
            rate, zrate = n / seconds, n / zs
            flat_rate, plain_rate = flat["rows"] / flat["seconds"], plain["rows"] / plain["seconds"]
            print(f"raw polars+connectorx, same flat columns: {flat_rate:,.0f} rows/s ({flat['seconds']:.1f} s), "
                  f"peak RSS {flat['peak_rss'] / MIB:.0f} MiB")
            print(f"raw polars+connectorx, data as JSON text: {plain_rate:,.0f} rows/s ({plain['seconds']:.1f} s), "
                  f"peak RSS {plain['peak_rss'] / MIB:.0f} MiB")
            print(f"engine export: {rate:,.0f} rows/s ({seconds:.1f} s, {size / MIB:.0f} MiB of Parquet, "
                  f"{len(result['manifest']['files'])} files); ratio to raw: {rate / flat_rate:.2f} (flat columns), "
                  f"{rate / plain_rate:.2f} (JSON text); worker peak RSS {peak / MIB:.0f} MiB")
            print(f"synkronus ZIP: {zrate:,.0f} rows/s ({zs:.1f} s, {zres['size'] / MIB:.0f} MiB); ratio to raw: "
                  f"{zrate / flat_rate:.2f} (flat columns), {zrate / plain_rate:.2f} (JSON text); "
                  f"worker peak RSS {zpeak / MIB:.0f} MiB")
            stop_worker(worker)
            worker = None
            results[n] = {"ratio": rate / flat_rate, "zip_ratio": zrate / flat_rate, "peak": peak, "zip_peak": zpeak}
            import shutil
            shutil.rmtree(settings.export_dir, ignore_errors=True)
            shutil.rmtree(settings.blob_dir, ignore_errors=True)
        sizes = sorted(results)
        print("--- summary (ratios: export rows/s over the raw polars rate of the same flat columns, same run)")
        for n in sizes:
            r = results[n]
            print(f"{n:>9,}: engine export ratio {r['ratio']:.2f}, peak RSS {r['peak'] / MIB:.0f} MiB; "
                  f"synkronus ZIP ratio {r['zip_ratio']:.2f}, peak RSS {r['zip_peak'] / MIB:.0f} MiB")
        if len(sizes) > 1:
            a, b = results[sizes[0]], results[sizes[-1]]
            print(f"worker peak RSS {sizes[0]:,} → {sizes[-1]:,}: export {a['peak'] / MIB:.0f} → {b['peak'] / MIB:.0f} MiB "
                  f"({b['peak'] / a['peak'] - 1:+.0%}), synkronus ZIP {a['zip_peak'] / MIB:.0f} → "
                  f"{b['zip_peak'] / MIB:.0f} MiB ({b['zip_peak'] / a['zip_peak'] - 1:+.0%})")
        engine.dispose()
    finally:
        if worker is not None:
            stop_worker(worker)
        if not args.keep:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
