"""Brute-force throttle for mSupply Basic auth: a Redis counter of failed attempts per account in a
fixed window. Redis only holds this short-lived state; when Redis is down the check lets requests
through (the password check still runs), so an outage of the doorbell never locks sites out."""
from __future__ import annotations

import logging

import redis

log = logging.getLogger(__name__)

MAX_FAILURES = 10
WINDOW_SECONDS = 300


def _key(account: str) -> str:
    return f"fieldsync:msupply:authfail:{account}"


def _what_failed(exc: BaseException) -> str:
    """Name the failure honestly: a connection problem is "unreachable", anything else (a command the
    server refused, a bad reply) is a Redis error, with the exception type either way."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return f"Redis unreachable ({type(exc).__name__}: {exc})"
    return f"Redis error ({type(exc).__name__}: {exc})"


def blocked_for(redis_client, account: str, limit: int = MAX_FAILURES) -> int:
    """Seconds the account must wait, or 0 when it may try."""
    try:
        pipe = redis_client.pipeline()
        pipe.get(_key(account))
        pipe.ttl(_key(account))
        count, ttl = pipe.execute()
    except Exception as exc:
        log.warning("throttle check skipped (GET/TTL failed): %s", _what_failed(exc), exc_info=True)
        return 0
    if count is not None and int(count) >= limit:
        return max(int(ttl), 1)
    return 0


def record_failure(redis_client, account: str, window: int = WINDOW_SECONDS) -> None:
    """Count one failed attempt. The window is fixed: it starts at the first failure and later failures
    never extend it.

    Why `SET key 0 EX window NX` + `INCR` in one MULTI/EXEC pipeline (and not `EXPIRE key window NX`,
    which Redis < 7 rejects, nor a Lua script): SET ... EX ... NX exists since Redis 2.6.12, so this
    works on the embedded Redis 6.2 and on Redis 7; fakeredis runs it without a Lua engine; and
    MULTI/EXEC runs the three commands with no other client in between, so concurrent failures can
    neither lose a count nor reset the window (INCR keeps the TTL that SET gave the key). The trailing
    TTL lets us repair a counter left without an expiry by something else, so it cannot block forever."""
    key = _key(account)
    try:
        pipe = redis_client.pipeline()  # transaction=True by default: MULTI/EXEC
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, _, ttl = pipe.execute()
        if ttl == -1:  # exists without an expiry: give it a window (racing repairs only set the same window)
            redis_client.expire(key, window)
    except Exception as exc:
        log.warning("could not record a failed login (SET NX EX/INCR failed): %s", _what_failed(exc),
                    exc_info=True)


def clear(redis_client, account: str) -> None:
    try:
        redis_client.delete(_key(account))
    except Exception as exc:
        log.warning("could not clear the login throttle (DEL failed): %s", _what_failed(exc), exc_info=True)
