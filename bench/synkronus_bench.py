"""Synkronus push/pull benchmark against a running fieldsync.

Pushes N observations (~0.7 KB `data`, 15 fields) in batches of 500 from 4 concurrent clients, waits
until every push is applied, pulls everything back with limit 500 from one client, and prints push and
pull records/s, p50/p99 latencies, peak RSS of web and worker (and at 10% vs 100% of the push), and the
raw COPY rate of the same rows into an empty copy of the records table, measured in the same run.

    python bench/synkronus_bench.py --url http://127.0.0.1:8000 --database-url postgresql://… \
        --admin admin --password admin [--records 200000]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RssSampler, percentile, raw_copy_rate  # noqa: E402

FIELDS = 15


def observation(i: int) -> dict:
    data = {f"field_{k:02d}": f"value {i} {k} " + "x" * 30 for k in range(FIELDS - 3)}
    data.update({"count": i % 97, "score": (i % 1000) / 7.0, "ok": i % 2 == 0})
    return {"observation_id": f"bench-{i}", "form_type": f"form_{i % 5}", "form_version": "1", "data": data,
            "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z", "deleted": False}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--admin", default="admin")
    ap.add_argument("--password", default="admin")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    http = requests.Session()
    admin = http.post(f"{args.url}/auth/login", json={"username": args.admin, "password": args.password}).json()
    user = f"bench-{uuid.uuid4().hex[:6]}"
    http.post(f"{args.url}/users/create", json={"username": user, "password": "bench-pw", "role": "read-write"},
              headers={"Authorization": f"Bearer {admin['token']}"}).raise_for_status()
    token = http.post(f"{args.url}/auth/login", json={"username": user, "password": "bench-pw"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    records = [observation(i) for i in range(args.records)]
    batches = [records[i:i + args.batch] for i in range(0, len(records), args.batch)]
    bodies = [orjson.dumps({"transmission_id": uuid.uuid4().hex, "client_id": f"bench-client-{n % args.clients}",
                            "records": b}) for n, b in enumerate(batches)]
    print(f"records={args.records} batches={len(bodies)} avg_body={sum(map(len, bodies)) // len(bodies)} B "
          f"avg_data={len(orjson.dumps(records[0]['data']))} B")

    sampler = RssSampler({"web": "gunicorn", "worker": "celery"})
    sampler.start()
    latencies, pending, lock = [], [], threading.Lock()
    rss_at = {}
    next_batch = iter(range(len(bodies)))

    def client_loop():
        s = requests.Session()
        while True:
            with lock:
                n = next(next_batch, None)
            if n is None:
                return
            started = time.perf_counter()
            r = s.post(f"{args.url}/sync/push", data=bodies[n], headers=headers, timeout=120)
            elapsed = time.perf_counter() - started
            if r.status_code == 202:
                with lock:
                    pending.append(r.json()["status_url"])
            elif r.status_code != 200:
                raise SystemExit(f"push failed: {r.status_code} {r.text[:300]}")
            with lock:
                latencies.append(elapsed)
                if len(latencies) == max(1, len(bodies) // 10):
                    rss_at["10%"] = sampler.snapshot()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for url in pending:  # 202 answers: wait until their jobs are applied
        while http.get(f"{args.url}{url}", headers=headers).json()["status"] not in ("COMPLETED", "FAILED"):
            time.sleep(0.2)
    push_elapsed = time.perf_counter() - started
    rss_at["100%"] = sampler.snapshot()

    pull_lat, pulled, since = [], 0, 0
    started = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        r = http.post(f"{args.url}/sync/pull?limit=500", json={"client_id": "bench-reader", "since": {"version": since}},
                      headers=headers)
        body = orjson.loads(r.content)
        pull_lat.append(time.perf_counter() - t0)
        pulled += len(body["records"])
        if not body["has_more"]:
            break
        since = body["change_cutoff"]
    pull_elapsed = time.perf_counter() - started
    sampler.stop()

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, rec in enumerate(records):
        w.writerow(["default", "synkronus", rec["observation_id"], rec["form_type"], rec["form_version"],
                    json.dumps(rec["data"]), "{}", uuid.uuid4().hex * 2, "f", "", "bench", i + 2,
                    "2025-01-01T00:00:00Z", "2025-01-01T00:00:00Z", "bench", "bench"])
    copy_rate = raw_copy_rate(args.database_url, buf, len(records))

    push_rate = args.records / push_elapsed
    print(f"push: {push_rate:,.0f} records/s end to end ({push_elapsed:.1f} s, {len(pending)} answered 202); "
          f"latency p50 {percentile(latencies, 50) * 1000:.0f} ms p99 {percentile(latencies, 99) * 1000:.0f} ms")
    print(f"pull: {pulled / pull_elapsed:,.0f} records/s ({pulled} records, {len(pull_lat)} pages); "
          f"latency p50 {percentile(pull_lat, 50) * 1000:.0f} ms p99 {percentile(pull_lat, 99) * 1000:.0f} ms")
    print(f"raw COPY of the same rows: {copy_rate:,.0f} rows/s; push/COPY ratio {push_rate / copy_rate:.2f}")
    mib = 1024 * 1024
    print("peak RSS: " + ", ".join(f"{k} {v / mib:.0f} MiB" for k, v in sampler.peak.items()))
    for point, snap in rss_at.items():
        print(f"RSS at {point} of the push: " + ", ".join(f"{k} {v / mib:.0f} MiB" for k, v in snap.items()))
    if pulled < args.records:
        raise SystemExit(f"pulled {pulled} < pushed {args.records}")


if __name__ == "__main__":
    main()
