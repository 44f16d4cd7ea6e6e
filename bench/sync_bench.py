"""Push and pull, end to end, beside a bare yardstick and raw COPY, in one run (the engine-speed targets).

For each configuration (batches of 500 from 4 clients, batches of 1,000 from 1 client) this starts a
`fieldsync serve` on a fresh database, pushes N records through its Synkronus API and pulls them all back
at once in pages of 500 (the records table has autovacuum off, so no ANALYZE can run between the push and
the pull), with the same HTTP client (`peer_bench.py`) used for the bare yardstick endpoint, which runs
in the same run on the same PostgreSQL. It prints, per configuration:

- push and pull records/s and request p50/p99 for fieldsync and for the yardstick;
- raw COPY of the same rows into an empty copy of the records table (same indexes), measured in the run;
- the ratios the targets are stated in: push / COPY, push / yardstick, pull / yardstick;
- CPU seconds per process group during the push (PostgreSQL backends, web, workers, client);
- the pull page's plan, taken right after the pull, with the table's ANALYZE state beside it.

`--other-tenant-rows N` first fills the records table with N rows of 100 other tenants (the pull must
not slow down because the table is big).

The yardstick and the client are the measuring tools in the directory given by `--peers` (`gen_data.py`,
`peer_bench.py`, `ref_server/app.py`); they need the bench extra: `pip install -e '.[bench]'`.

    .venv/bin/python bench/sync_bench.py --peers DIR [--records 100000] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--redis-url redis://127.0.0.1:6379/9]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
import psycopg2
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import raw_copy_rate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def admin(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def fresh_database(server_url: str, name: str) -> str:
    conn = admin(server_url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return with_db(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    conn = admin(server_url)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not come up")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- CPU per process group
def _groups(markers: dict[str, str], root: int | None = None, own: tuple[str, ...] = ("web", "worker")
            ) -> dict[str, int]:
    """CPU ticks (its own and its reaped children's) per group of processes whose command line holds the
    group's marker. `root`: the groups in `own` count only descendants of that process (the server under
    test, not another one on the machine)."""
    procs: dict[int, tuple[int, str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        procs[int(entry.name)] = (int(fields[1]), cmd, sum(int(f) for f in fields[11:15]))

    def under_root(pid: int) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            if pid == root:
                return True
            pid, seen = procs[pid][0] if pid in procs else 0, seen + 1
        return False

    ticks: dict[str, int] = {}
    for pid, (_, cmd, used) in procs.items():
        for group, marker in markers.items():
            if root is not None and group in own and not under_root(pid):
                continue
            if marker in cmd:
                ticks[group] = ticks.get(group, 0) + used
                break
    return ticks


def cpu_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    hz = os.sysconf("SC_CLK_TCK")
    return {g: (after.get(g, 0) - before.get(g, 0)) / hz for g in sorted(set(before) | set(after))}


# ---------------------------------------------------------------- the runs
def peer_bench(peers: Path, target: str, url: str, data: Path, n: int, batch: int, clients: int,
               auth: str | None, env: dict, cpu_markers: dict[str, str], root: int | None = None
               ) -> tuple[dict, dict]:
    """Run peer_bench once; (its result line, CPU seconds per group over the whole push + pull)."""
    cmd = [PY, str(peers / "peer_bench.py"), "--target", target, "--url", url, "--n", str(n), "--batch", str(batch),
           "--page", "500", "--concurrency", str(clients), "--reps", "1", "--data", str(data), "--label", target]
    if auth:
        cmd += ["--auth", auth]
    before = _groups(cpu_markers, root)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    after = _groups(cpu_markers, root)
    if out.returncode != 0:
        raise SystemExit(f"peer_bench {target} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    line = next(json.loads(x) for x in out.stdout.splitlines() if x.startswith("{") and '"peers"' in x)
    return line, cpu_delta(before, after)


def yardstick(peers: Path, server_url: str, data: Path, n: int, batch: int, clients: int, port: int) -> dict:
    name = "fieldsync_bench_yardstick"
    url = fresh_database(server_url, name)
    import importlib.util
    spec = importlib.util.spec_from_file_location("peers_common", peers / "common.py")
    peers_common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers_common)  # the yardstick's own table, from its directory
    DDL = peers_common.DDL
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute("ALTER TABLE records SET (autovacuum_enabled = false)")
    parts = urlsplit(url)
    dsn = f"host={parts.hostname} port={parts.port or 5432} dbname={name} user={parts.username or 'postgres'}"
    env = {**os.environ, "REF_DSN": dsn, "BENCH_RESULTS": "/tmp/fieldsync-bench-results"}
    proc = subprocess.Popen([PY, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir",
                             str(peers / "ref_server"), "app:app"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/noop")
        result, _ = peer_bench(peers, "ours", f"http://127.0.0.1:{port}", data, n, batch, clients, None, env, {})
    finally:
        stop(proc)
        drop_database(server_url, name)
    return result


def fill_other_tenants(url: str, rows: int) -> float:
    """rows records spread over 100 other tenants, in the real table; seconds taken."""
    started = time.perf_counter()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("""
            INSERT INTO records (tenant_id, namespace, record_key, record_type, schema_version, data, meta,
                                 content_hash, version, created_at, updated_at)
            SELECT 'other-' || (g %% 100), 'synkronus', 'k' || g, 'form_' || (g %% 5), '1',
                   jsonb_build_object('n', g, 'text', repeat('x', 100)), '{}', md5(g::text) || md5(g::text),
                   g / 100 + 1, now(), now()
              FROM generate_series(1, %s) g
        """, (rows,))
    return time.perf_counter() - started


def plan_of_pull(url: str) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from models.synkronus.store import OBSERVATION_JSON
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = 'records'")
        analysed = cur.fetchone()
        cur.execute("SELECT min(version) FROM records WHERE tenant_id = 'default'")
        low = cur.fetchone()[0] or 0
        cur.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; "
                    f"EXPLAIN (ANALYZE, COSTS OFF) SELECT {OBSERVATION_JSON} FROM records "
                    "WHERE feed_key = 'default:synkronus' AND version > %s ORDER BY version LIMIT 501", (low,))
        plan = [row[0] for row in cur.fetchall()]
    return [f"(records analysed: manual {analysed[0]}, auto {analysed[1]})"] + plan


def copy_rate(url: str, data: Path, n: int) -> float:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with open(data, "rb") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            rec = orjson.loads(line)
            writer.writerow(["default", "synkronus", rec["id"], rec["schema_type"], str(rec["schema_version"]),
                             orjson.dumps(rec["data"], option=orjson.OPT_SORT_KEYS).decode(), "{}",
                             uuid.uuid4().hex * 2, "f", "", "bench", i + 2, "2025-01-01T00:00:00Z",
                             "2025-01-01T00:00:00Z", "bench", "bench"])
    return raw_copy_rate(url, buf, n)


def fieldsync(peers: Path, server_url: str, redis_url: str, data: Path, n: int, batch: int, clients: int,
              port: int, other_rows: int) -> dict:
    name = "fieldsync_bench_engine"
    url = fresh_database(server_url, name)
    work = Path(f"/tmp/fieldsync-bench-{port}")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "JWT_SECRET": "bench-" + uuid.uuid4().hex,
           "ADMIN_PASSWORD": "bench-admin-pw", "FIELDSYNC_DATA_DIR": str(work), "LOG_LEVEL": "WARNING",
           "BENCH_RESULTS": "/tmp/fieldsync-bench-results"}
    subprocess.run([PY, "-m", "web.cli", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    filled = fill_other_tenants(url, other_rows) if other_rows else 0.0
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("ALTER TABLE records SET (autovacuum_enabled = false)")
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    proc = subprocess.Popen([PY, "-m", "web.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                            start_new_session=True, stdout=open(work / "serve.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        time.sleep(3)  # the worker and scheduler finish starting
        markers = {"postgres": name, "web": "gunicorn web.wsgi", "worker": "celery -A workers",
                   "client": "peer_bench.py"}
        result, cpu = peer_bench(peers, "fieldsync", f"http://127.0.0.1:{port}", data, n, batch, clients,
                                 "admin:bench-admin-pw", env, markers, root=proc.pid)
        result["cpu"] = cpu
        result["plan"] = plan_of_pull(url)
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), max(version) FROM records WHERE tenant_id = 'default'")
            result["stored"] = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM jobs WHERE kind = 'engine.index'")
            result["index_jobs"] = cur.fetchone()[0]
        result["copy_rps"] = copy_rate(url, data, n)
        result["filled_other_rows_s"] = round(filled, 1)
    finally:
        stop(proc)
        drop_database(server_url, name)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", type=Path, required=True, help="directory with gen_data.py, peer_bench.py, ref_server/")
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--other-tenant-rows", type=int, default=0)
    ap.add_argument("--configs", default="500x4,1000x1", help="batch x clients, comma separated")
    args = ap.parse_args()

    data = Path(f"/tmp/fieldsync-bench-data/records-{args.records}.ndjson")
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, str(args.peers / "gen_data.py"), str(args.records), str(data)], check=True)
    print(f"records={args.records} (~{data.stat().st_size // args.records} B per line) "
          f"other tenants' rows={args.other_tenant_rows:,}")
    for config in args.configs.split(","):
        batch, clients = (int(x) for x in config.split("x"))
        ref = yardstick(args.peers, args.database_url, data, args.records, batch, clients, 8897)
        ours = fieldsync(args.peers, args.database_url, args.redis_url, data, args.records, batch, clients, 8896,
                         args.other_tenant_rows)
        if ours["stored"] != args.records:
            raise SystemExit(f"fieldsync stored {ours['stored']} of {args.records} records")
        print(f"\n== batches of {batch} from {clients} client(s)")
        print(f"{'':22s}{'push rec/s':>12s}{'p50 ms':>9s}{'p99 ms':>9s}{'pull rec/s':>12s}{'p50 ms':>9s}{'p99 ms':>9s}")
        for label, r in (("fieldsync", ours), ("yardstick", ref)):
            print(f"{label:22s}{r['push_rps']:>12,}{r['push_req_p50_ms']:>9}{r['push_req_p99_ms']:>9}"
                  f"{r['pull_rps']:>12,}{r['pull_page_p50_ms']:>9}{r['pull_page_p99_ms']:>9}")
        print(f"{'raw COPY':22s}{ours['copy_rps']:>12,.0f}")
        print(f"ratios: push/COPY {ours['push_rps'] / ours['copy_rps']:.2f}  push/yardstick "
              f"{ours['push_rps'] / ref['push_rps']:.2f}  pull/yardstick {ours['pull_rps'] / ref['pull_rps']:.2f}")
        print("CPU seconds during push+pull: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["cpu"].items())
              + f"; index jobs: {ours['index_jobs']}")
        print("pull plan right after the push:\n  " + "\n  ".join(ours["plan"]))


if __name__ == "__main__":
    main()
