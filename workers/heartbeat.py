"""Workers' heartbeats and the records-applied-per-minute series, kept in Redis where the ops console and
`fieldsync ops status` read them (nobody asks Celery's control channel).

Each pool process of a worker writes one field of the hash `fieldsync:ops:workers` every
`ops_heartbeat_seconds`: its worker's host name, pid, queues, the job it runs now and when it beat. A
worker killed outright stops writing, and readers show it dead once its newest beat is older than
`ops_worker_timeout_seconds`. Everything here is best effort: a down Redis never stops a job."""
from __future__ import annotations

import logging
import os
import threading
import time

import orjson

log = logging.getLogger(__name__)

WORKERS_KEY = "fieldsync:ops:workers"
APPLIED_PREFIX = "fieldsync:ops:applied:"
APPLIED_KEEP_SECONDS = 2 * 3600
FORGET_AFTER_SECONDS = 24 * 3600  # a beat older than this is dropped from the hash

_identity = {"hostname": None, "queues": []}
_current = {"job": None, "kind": None, "since": None}
_started = {"pid": None}


def set_identity(hostname: str, queues) -> None:
    """Called in the worker's main process once it knows its name and queues (before the pool forks)."""
    _identity["hostname"] = hostname
    _identity["queues"] = sorted(queues)


def working_on(job_id, kind: str | None) -> None:
    _current.update(job=str(job_id) if job_id else None, kind=kind, since=time.time() if job_id else None)


def beat(redis_client) -> None:
    hostname = _identity["hostname"] or f"worker@{os.uname().nodename}"
    pid = os.getpid()
    entry = {"hostname": hostname, "pid": pid, "queues": _identity["queues"], "job": _current["job"],
             "kind": _current["kind"], "job_since": _current["since"], "beat": time.time()}
    try:
        redis_client.hset(WORKERS_KEY, f"{hostname}|{pid}", orjson.dumps(entry))
    except Exception:
        log.debug("heartbeat not written", exc_info=True)


def start(runtime) -> None:
    """Start this process's heartbeat thread (once per process: a forked child starts its own)."""
    if _started["pid"] == os.getpid():
        return
    _started["pid"] = os.getpid()
    interval = max(0.2, float(runtime.settings.ops_heartbeat_seconds))

    def loop():
        while True:
            beat(runtime.redis_client())
            time.sleep(interval)

    threading.Thread(target=loop, name="fieldsync-heartbeat", daemon=True).start()


def read_workers(redis_client, timeout_seconds: float, now: float | None = None) -> list[dict]:
    """One entry per worker (host name): alive or not, its queues, its processes' current jobs and the
    newest beat. Beats older than FORGET_AFTER_SECONDS are removed."""
    now = time.time() if now is None else now
    raw = redis_client.hgetall(WORKERS_KEY)
    workers: dict[str, dict] = {}
    forget = []
    for field, value in raw.items():
        try:
            entry = orjson.loads(value)
        except orjson.JSONDecodeError:
            forget.append(field)
            continue
        age = now - float(entry.get("beat") or 0)
        if age > FORGET_AFTER_SECONDS:
            forget.append(field)
            continue
        worker = workers.setdefault(entry["hostname"], {"hostname": entry["hostname"], "queues": [],
                                                        "last_beat": 0.0, "processes": 0, "jobs": []})
        worker["queues"] = sorted(set(worker["queues"]) | set(entry.get("queues") or []))
        worker["last_beat"] = max(worker["last_beat"], float(entry.get("beat") or 0))
        if age <= timeout_seconds:
            worker["processes"] += 1
            if entry.get("job"):
                worker["jobs"].append({"id": entry["job"], "kind": entry.get("kind")})
    if forget:
        redis_client.hdel(WORKERS_KEY, *forget)
    for worker in workers.values():
        worker["age"] = now - worker["last_beat"]
        worker["alive"] = worker["age"] <= timeout_seconds
    return sorted(workers.values(), key=lambda w: (not w["alive"], w["hostname"]))


_quiet_until = {"t": 0.0}
QUIET_AFTER_FAILURE_SECONDS = 30.0


def count_applied(redis_client, number: int, now: float | None = None) -> None:
    """Add records applied now to this minute's counter. After a failed write the counter stays quiet
    for a while, so a down Redis costs a chunk one connect timeout at most, not one per chunk."""
    if number <= 0 or time.monotonic() < _quiet_until["t"]:
        return
    minute = int((time.time() if now is None else now) // 60)
    try:
        pipe = redis_client.pipeline()
        pipe.incrby(f"{APPLIED_PREFIX}{minute}", number)
        pipe.expire(f"{APPLIED_PREFIX}{minute}", APPLIED_KEEP_SECONDS)
        pipe.execute()
    except Exception:
        _quiet_until["t"] = time.monotonic() + QUIET_AFTER_FAILURE_SECONDS
        log.debug("applied-records counter not written", exc_info=True)


def applied_per_minute(redis_client, minutes: int = 60, now: float | None = None) -> list[tuple[int, int]]:
    """[(minute as epoch seconds, records applied), …] for the last `minutes` minutes, oldest first."""
    last = int((time.time() if now is None else now) // 60)
    keys = [f"{APPLIED_PREFIX}{m}" for m in range(last - minutes + 1, last + 1)]
    values = redis_client.mget(keys)
    return [(m * 60, int(v or 0)) for m, v in zip(range(last - minutes + 1, last + 1), values)]
