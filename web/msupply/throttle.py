"""Brute-force throttle for mSupply Basic auth: a Redis counter of failed attempts per account in a
fixed window. Redis only holds this short-lived state; when Redis is down the check lets requests
through (the password check still runs), so an outage of the doorbell never locks sites out."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MAX_FAILURES = 10
WINDOW_SECONDS = 300


def _key(account: str) -> str:
    return f"fieldsync:msupply:authfail:{account}"


def blocked_for(redis_client, account: str, limit: int = MAX_FAILURES) -> int:
    """Seconds the account must wait, or 0 when it may try."""
    try:
        pipe = redis_client.pipeline()
        pipe.get(_key(account))
        pipe.ttl(_key(account))
        count, ttl = pipe.execute()
    except Exception:
        log.warning("throttle check skipped: Redis unavailable", exc_info=True)
        return 0
    if count is not None and int(count) >= limit:
        return max(int(ttl), 1)
    return 0


def record_failure(redis_client, account: str, window: int = WINDOW_SECONDS) -> None:
    try:
        pipe = redis_client.pipeline()
        pipe.incr(_key(account))
        pipe.expire(_key(account), window, nx=True)
        pipe.execute()
    except Exception:
        log.warning("could not record a failed login: Redis unavailable", exc_info=True)


def clear(redis_client, account: str) -> None:
    try:
        redis_client.delete(_key(account))
    except Exception:
        log.warning("could not clear the login throttle: Redis unavailable", exc_info=True)
