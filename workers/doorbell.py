"""A Redis doorbell: the worker rings when a job ends so a waiting request wakes at once. It carries no
truth (the job row does); a lost ring only means the waiter falls back to polling the database."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
