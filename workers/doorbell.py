"""A Redis doorbell: the worker rings when a job ends so a waiting request wakes at once. It carries no
truth (the job row does); a lost ring only means the waiter falls back to polling the database."""
from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def _key(job_id) -> str:
    return f"fieldsync:jobdone:{job_id}"


def ring(redis_client, job_id) -> None:
    try:
        pipe = redis_client.pipeline()
        pipe.rpush(_key(job_id), 1)
        pipe.expire(_key(job_id), 120)
        pipe.execute()
    except Exception:  # the doorbell is best effort by design
        log.warning("could not ring the doorbell for job %s", job_id, exc_info=True)


def wait(redis_client, job_id, timeout: float) -> bool:
    """Block up to timeout seconds for the ring; True if it rang."""
    if timeout <= 0:
        return False
    try:
        got = redis_client.blpop([_key(job_id)], timeout=max(timeout, 0.01))
        if got is not None:
            redis_client.rpush(_key(job_id), 1)  # leave it rung for other waiters
            return True
        return False
    except Exception:
        log.warning("doorbell wait failed for job %s", job_id, exc_info=True)
        return False


BACKOFF_START = 0.25
BACKOFF_MAX = 2.0


def wait_until(redis_client, job_id, timeout: float, check: Callable[[], T | None], *,
               slice_seconds: float = 1.0, sleep=time.sleep, clock=time.monotonic) -> T | None:
    """Call `check()` until it answers something other than None or `timeout` seconds pass; between
    calls, wait for the job's doorbell (at most `slice_seconds`). When the doorbell fails at once (Redis
    down), sleep instead, doubling the pause up to BACKOFF_MAX, so the database is not polled in a tight
    loop. Returns check()'s answer, or None on time-out. `check` runs at least once."""
    deadline = clock() + timeout
    pause = BACKOFF_START
    while True:
        answer = check()
        if answer is not None:
            return answer
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        started = clock()
        if wait(redis_client, job_id, min(remaining, slice_seconds)):
            pause = BACKOFF_START
            continue
        waited = clock() - started
        if waited < min(remaining, slice_seconds) / 2:
            # the doorbell answered at once without a ring: it is down; back off
            sleep(min(pause, max(0.0, deadline - clock())))
            pause = min(BACKOFF_MAX, pause * 2)
        else:
            pause = BACKOFF_START
