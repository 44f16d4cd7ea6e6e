"""Brute-force throttle for password logins: Redis counters of failed attempts in fixed windows.

A login is throttled per (account, client address): `PER_ADDRESS_LIMIT` failures from one address within
`PER_ADDRESS_WINDOW` seconds make that address wait, so someone who only knows an account's name cannot
lock its real owner (who logs in from another address) out. A longer per-account ceiling
(`PER_ACCOUNT_LIMIT` failures from all addresses within `PER_ACCOUNT_WINDOW`) bounds a guesser who spreads
over many addresses. A successful login clears the counter of its (account, address); the per-account
counter only expires. Attempts refused by the throttle are not counted (their password is not checked).

The client address is `request.remote_addr`: behind a reverse proxy that is the proxy's address (one
address for every client) unless the app is wrapped in Werkzeug's ProxyFix.

Redis only holds this short-lived state; when Redis is down (or refuses a command) the check lets
requests through (the password check still runs), so a Redis outage never locks anyone out."""
from __future__ import annotations

import hashlib
import json
import logging

import redis

log = logging.getLogger(__name__)

PER_ADDRESS_LIMIT = 10
PER_ADDRESS_WINDOW = 300
PER_ACCOUNT_LIMIT = 100
PER_ACCOUNT_WINDOW = 900

# The single-counter defaults (one counter, one window).
MAX_FAILURES = PER_ADDRESS_LIMIT
WINDOW_SECONDS = PER_ADDRESS_WINDOW


def _key(counter: str) -> str:
    # Hashed: an account name is client input of any length and any characters.
    digest = hashlib.sha256(counter.encode("utf-8", "surrogatepass")).hexdigest()
    return f"fieldsync:authfail:{digest}"


def _what_failed(exc: BaseException) -> str:
    """Name the failure honestly: a connection problem is "unreachable", anything else (a command the
    server refused, a bad reply) is a Redis error, with the exception type either way."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return f"Redis unreachable ({type(exc).__name__}: {exc})"
    return f"Redis error ({type(exc).__name__}: {exc})"


# -- one counter ---------------------------------------------------------------------------------------

def blocked_for(redis_client, counter: str, limit: int = MAX_FAILURES) -> int:
    """Seconds the counter's owner must wait, or 0 when it may try."""
    return _blocked(redis_client, [(counter, limit)])


def record_failure(redis_client, counter: str, window: int = WINDOW_SECONDS) -> None:
    """Count one failed attempt. The window is fixed: it starts at the first failure and later failures
    never extend it.

    Why `SET key 0 EX window NX` + `INCR` in one MULTI/EXEC pipeline (and not `EXPIRE key window NX`,
    which Redis < 7 rejects, nor a Lua script): SET ... EX ... NX exists since Redis 2.6.12, so this
    works on the embedded Redis 6.2 and on Redis 7; fakeredis runs it without a Lua engine; and
    MULTI/EXEC runs the commands with no other client in between, so concurrent failures can neither
    lose a count nor reset the window (INCR keeps the TTL that SET gave the key). The trailing TTL lets
    us repair a counter left without an expiry by something else, so it cannot block forever."""
    _record(redis_client, [(counter, window)])


def clear(redis_client, counter: str) -> None:
    try:
        redis_client.delete(_key(counter))
    except Exception as exc:
        log.warning("could not clear the login throttle (DEL failed): %s", _what_failed(exc), exc_info=True)


def _blocked(redis_client, counters: list[tuple[str, int]]) -> int:
    return _look(redis_client, counters)[0]


def _look(redis_client, counters: list[tuple[str, int]]) -> tuple[int, list | None]:
    """(seconds to wait, each counter's count or None); (0, None) when Redis failed. One MGET of the
    counters (what every login pays), and a TTL only of a counter at its limit (a throttled login)."""
    keys = [_key(counter) for counter, _ in counters]
    try:
        counts = redis_client.mget(keys)
        over = [key for key, count, (_, limit) in zip(keys, counts, counters)
                if count is not None and int(count) >= limit]
        ttls = [redis_client.ttl(key) for key in over]
    except Exception as exc:
        log.warning("throttle check skipped (MGET/TTL failed): %s", _what_failed(exc), exc_info=True)
        return 0, None
    # a counter at its limit waits out its window (at least a second: one that just expired, or one
    # left without an expiry, which the next failure repairs)
    wait = max((max(int(ttl), 1) for ttl in ttls), default=0)
    return wait, counts


def _record(redis_client, counters: list[tuple[str, int]]) -> None:
    try:
        pipe = redis_client.pipeline()  # transaction=True by default: MULTI/EXEC
        for counter, window in counters:
            key = _key(counter)
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        replies = pipe.execute()
        for i, (counter, window) in enumerate(counters):
            if replies[3 * i + 2] == -1:  # exists without an expiry: give it a window
                redis_client.expire(_key(counter), window)
    except Exception as exc:
        log.warning("could not record a failed login (SET NX EX/INCR failed): %s", _what_failed(exc),
                    exc_info=True)


# -- (account, address) with a per-account ceiling -------------------------------------------------------

def _counters(account: str, address: str | None) -> tuple[str, str]:
    return (json.dumps(["address", account, address or ""]), json.dumps(["account", account]))


def login_blocked_for(redis_client, account: str, address: str | None) -> int:
    """Seconds this (account, address) must wait before its password is checked, or 0."""
    return login_check(redis_client, account, address)[0]


def login_check(redis_client, account: str, address: str | None) -> tuple[int, bool]:
    """`login_blocked_for`, and whether this (account, address) has failures that a success must clear
    (True when Redis did not say): pass it to `login_succeeded`, which then skips a needless DEL. A
    failure counted between the two stays counted."""
    per_address, per_account = _counters(account, address)
    wait, counts = _look(redis_client, [(per_address, PER_ADDRESS_LIMIT), (per_account, PER_ACCOUNT_LIMIT)])
    return wait, counts is None or counts[0] is not None


def login_failed(redis_client, account: str, address: str | None) -> None:
    per_address, per_account = _counters(account, address)
    _record(redis_client, [(per_address, PER_ADDRESS_WINDOW), (per_account, PER_ACCOUNT_WINDOW)])


def login_succeeded(redis_client, account: str, address: str | None, *, had_failures: bool = True) -> None:
    """Clear the failures of this (account, address); the per-account ceiling only expires.
    `had_failures` False (from `login_check`): there is nothing to clear."""
    if not had_failures:
        return
    clear(redis_client, _counters(account, address)[0])
