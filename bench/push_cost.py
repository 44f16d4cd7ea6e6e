"""CPU per push and per pull page, by process group: the figures docs/scaling.md builds on.

Starts a `fieldsync serve` on a fresh database, then from one client (this process) pushes `--pushes`
Synkronus pushes of each size in `--sizes` (every answer awaited), and pulls the records back in pages
of 500. Reads each process group's CPU time from /proc before and after each phase (PostgreSQL backends,
gunicorn, the Celery workers, this client), so the figures hold on a busy machine too, where wall times do
not. Index jobs run in the same worker pool as the pushes and are counted with them, as in production.

    .venv/bin/python bench/push_cost.py [--sizes 50,1000] [--pushes 200] \\
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/9]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_bench import PY, ROOT, _groups, cpu_delta, drop_database, fresh_database, stop, wait_http  # noqa: E402

NAME = "fieldsync_bench_push_cost"


def record(i: int) -> dict:
    return {"observation_id": str(uuid.uuid4()), "form_type": f"form_{i % 5}", "form_version": "1",
            "data": {f"field_{k}": f"value {i} {k} " + "x" * 30 for k in range(15)},
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "deleted": False}


def measure(markers: dict[str, str], root: int, phase) -> tuple[float, dict[str, float]]:
    before, started, own = _groups(markers, root), time.perf_counter(), time.process_time()
    phase()
    elapsed, own = time.perf_counter() - started, time.process_time() - own
    cpu = cpu_delta(before, _groups(markers, root))
    cpu["client"] = own
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,1000", help="records per push, comma separated")
    ap.add_argument("--pushes", type=int, default=200, help="pushes of each size")
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--port", type=int, default=8893)
    args = ap.parse_args()

    url = fresh_database(args.database_url, NAME)
    work = Path(f"/tmp/fieldsync-push-cost-{args.port}")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": args.redis_url, "JWT_SECRET": "bench-" + uuid.uuid4().hex,
           "ADMIN_PASSWORD": "bench-admin-pw", "FIELDSYNC_DATA_DIR": str(work), "LOG_LEVEL": "WARNING"}
    subprocess.run([PY, "-m", "web.cli", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    import redis
    redis.Redis.from_url(args.redis_url).flushdb()
    proc = subprocess.Popen([PY, "-m", "web.cli", "serve", "--port", str(args.port)], env=env, cwd=ROOT,
                            start_new_session=True, stdout=open(work / "serve.log", "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{args.port}"
    markers = {"postgres": NAME, "web": "gunicorn web.wsgi", "worker": "celery -A workers"}
    try:
        wait_http(base + "/health")
        time.sleep(3)  # the worker and scheduler finish starting
        http = requests.Session()
        token = http.post(base + "/auth/login", json={"username": "admin", "password": "bench-admin-pw"}).json()
        http.headers.update({"Authorization": "Bearer " + token["token"], "Content-Type": "application/json"})
        print(f"{'phase':24s} {'n':>6s} {'wall ms':>9s} {'postgres':>9s} {'web':>7s} {'worker':>7s} {'client':>7s}"
              "   (CPU ms per push or page)")
        total = 0
        for size in (int(s) for s in args.sizes.split(",")):
            bodies = [orjson.dumps({"transmission_id": str(uuid.uuid4()), "client_id": "cost",
                                    "records": [record(total + p * size + i) for i in range(size)]})
                      for p in range(args.pushes)]
            total += size * args.pushes

            def pushes():
                for body in bodies:
                    answer = http.post(base + "/sync/push", data=body)
                    if answer.status_code != 200:
                        raise SystemExit(f"push answered {answer.status_code}: {answer.text[:300]}")
            elapsed, cpu = measure(markers, proc.pid, pushes)
            time.sleep(2)  # the last index run
            n = args.pushes
            print(f"{f'push of {size}':24s} {n:6d} {1000 * elapsed / n:9.1f} {1000 * cpu.get('postgres', 0) / n:9.1f} "
                  f"{1000 * cpu.get('web', 0) / n:7.1f} {1000 * cpu.get('worker', 0) / n:7.1f} "
                  f"{1000 * cpu['client'] / n:7.1f}")
        pages = {"n": 0}

        def pull():
            since = 0
            while True:
                page = http.post(base + "/sync/pull?limit=500",
                                 data=orjson.dumps({"client_id": "cost-reader", "since": {"version": since}})).json()
                pages["n"] += 1
                if not page["has_more"]:
                    return
                since = page["change_cutoff"]
        elapsed, cpu = measure(markers, proc.pid, pull)
        n = pages["n"]
        print(f"{'pull page of 500':24s} {n:6d} {1000 * elapsed / n:9.1f} {1000 * cpu.get('postgres', 0) / n:9.1f} "
              f"{1000 * cpu.get('web', 0) / n:7.1f} {1000 * cpu.get('worker', 0) / n:7.1f} {1000 * cpu['client'] / n:7.1f}")
    finally:
        stop(proc)
        drop_database(args.database_url, NAME)


if __name__ == "__main__":
    main()
