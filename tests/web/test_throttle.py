"""The core login throttle (web/throttle.py): one counter's fixed-window rules (fakeredis, then the real
test Redis, where the commands must actually be accepted), and the (account, address) counters with their
per-account ceiling."""
import logging
import time
import uuid

import fakeredis
import pytest

from web import throttle


# -- one counter ---------------------------------------------------------------------------------------

def test_blocks_after_the_limit_until_the_window_ends():
    r = fakeredis.FakeRedis()
    for _ in range(3):
        assert throttle.blocked_for(r, "acct:a", limit=3) == 0
        throttle.record_failure(r, "acct:a", window=60)
    assert 0 < throttle.blocked_for(r, "acct:a", limit=3) <= 60
    assert throttle.blocked_for(r, "acct:b", limit=3) == 0
    throttle.clear(r, "acct:a")
    assert throttle.blocked_for(r, "acct:a", limit=3) == 0


def test_the_window_is_not_extended_by_later_failures():
    r = fakeredis.FakeRedis()
    throttle.record_failure(r, "acct:a", window=60)
    r.expire(throttle._key("acct:a"), 5)
    throttle.record_failure(r, "acct:a", window=60)
    assert r.ttl(throttle._key("acct:a")) <= 5


def test_keys_are_short_whatever_the_account_name():
    r = fakeredis.FakeRedis()
    huge = "x" * 1_000_000 + "\ud800\x00"
    throttle.login_failed(r, huge, "10.0.0.1")
    assert all(len(k) < 100 for k in r.keys("*"))
    assert throttle.login_blocked_for(r, huge, "10.0.0.1") == 0


class Down:
    def pipeline(self, transaction=True):
        raise ConnectionError("down")

    def delete(self, *a):
        raise ConnectionError("down")


def test_redis_down_lets_the_password_check_decide():
    assert throttle.blocked_for(Down(), "acct:a") == 0
    throttle.record_failure(Down(), "acct:a")
    throttle.clear(Down(), "acct:a")
    assert throttle.login_blocked_for(Down(), "acct:a", "10.0.0.1") == 0
    throttle.login_failed(Down(), "acct:a", "10.0.0.1")
    throttle.login_succeeded(Down(), "acct:a", "10.0.0.1")


def test_a_command_error_is_logged_as_such_not_as_unavailable(caplog):
    import redis

    class Refusing:
        def pipeline(self, transaction=True):
            raise redis.ResponseError("ERR wrong number of arguments for 'expire' command")
    with caplog.at_level(logging.WARNING, logger=throttle.__name__):
        throttle.login_failed(Refusing(), "acct:a", "10.0.0.1")
    message = caplog.records[-1].getMessage()
    assert "ResponseError" in message and "unavailable" not in message and "unreachable" not in message


# -- (account, address) with a per-account ceiling -------------------------------------------------------

def test_one_address_is_blocked_and_another_is_not():
    r = fakeredis.FakeRedis()
    for _ in range(throttle.PER_ADDRESS_LIMIT):
        assert throttle.login_blocked_for(r, "acct:a", "10.0.0.1") == 0
        throttle.login_failed(r, "acct:a", "10.0.0.1")
    assert 0 < throttle.login_blocked_for(r, "acct:a", "10.0.0.1") <= throttle.PER_ADDRESS_WINDOW
    assert throttle.login_blocked_for(r, "acct:a", "10.0.0.2") == 0
    assert throttle.login_blocked_for(r, "acct:b", "10.0.0.1") == 0


def test_a_success_clears_its_address_but_not_the_account_ceiling():
    r = fakeredis.FakeRedis()
    for i in range(throttle.PER_ACCOUNT_LIMIT - 1):
        throttle.login_failed(r, "acct:a", f"10.0.{i // 10}.0")  # 10 per address
    assert throttle.login_blocked_for(r, "acct:a", "10.0.0.0") > 0, "10 from that address"
    throttle.login_succeeded(r, "acct:a", "10.0.0.0")
    assert throttle.login_blocked_for(r, "acct:a", "10.0.0.0") == 0
    throttle.login_failed(r, "acct:a", "10.0.0.0")
    wait = throttle.login_blocked_for(r, "acct:a", "10.9.9.9")
    assert throttle.PER_ADDRESS_WINDOW < wait <= throttle.PER_ACCOUNT_WINDOW, "the ceiling counts on"
    throttle.login_succeeded(r, "acct:a", "10.9.9.9")
    assert throttle.login_blocked_for(r, "acct:a", "10.9.9.9") > 0


def test_login_check_says_whether_a_success_has_failures_to_clear():
    r = fakeredis.FakeRedis()
    assert throttle.login_check(r, "acct:a", "10.0.0.1") == (0, False)
    throttle.login_failed(r, "acct:a", "10.0.0.1")
    assert throttle.login_check(r, "acct:a", "10.0.0.1") == (0, True)
    assert throttle.login_check(r, "acct:a", "10.0.0.2") == (0, False), "only the account ceiling counts there"
    throttle.login_succeeded(r, "acct:a", "10.0.0.1", had_failures=True)
    assert throttle.login_check(r, "acct:a", "10.0.0.1") == (0, False)
    for _ in range(throttle.PER_ADDRESS_LIMIT):
        throttle.login_failed(r, "acct:a", "10.0.0.1")
    wait, had_failures = throttle.login_check(r, "acct:a", "10.0.0.1")
    assert wait > 0 and had_failures


def test_login_check_with_redis_down_lets_through_and_still_clears():
    class Down:
        def pipeline(self):
            raise ConnectionError("down")

    assert throttle.login_check(Down(), "acct:a", "10.0.0.1") == (0, True)


def test_the_limits_are_those_the_readme_states():
    assert (throttle.PER_ADDRESS_LIMIT, throttle.PER_ADDRESS_WINDOW) == (10, 300)
    assert (throttle.PER_ACCOUNT_LIMIT, throttle.PER_ACCOUNT_WINDOW) == (100, 900)


# -- on the real test Redis ------------------------------------------------------------------------------

@pytest.fixture
def account(redis_client):
    name = f"acct:throttle-test-{uuid.uuid4().hex}"
    yield name
    redis_client.delete(throttle._key(name), *(throttle._key(c) for c in throttle._counters(name, "10.0.0.1")))


def test_real_redis_counts_in_a_fixed_window_from_the_first_failure(redis_client, account, caplog):
    key = throttle._key(account)
    with caplog.at_level(logging.WARNING, logger=throttle.__name__):
        throttle.record_failure(redis_client, account, window=60)
        assert redis_client.get(key) == b"1", "the first failure is counted (the server accepted the commands)"
        assert 0 < redis_client.ttl(key) <= 60, "the window starts at the first failure"
        redis_client.expire(key, 5)  # as if 55 s of the window had passed
        throttle.record_failure(redis_client, account, window=60)
        assert redis_client.get(key) == b"2"
        assert 0 < redis_client.ttl(key) <= 5, "a later failure does not extend the window"
        throttle.record_failure(redis_client, account, window=60)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert throttle.blocked_for(redis_client, account, limit=4) == 0
    assert 0 < throttle.blocked_for(redis_client, account, limit=3) <= 5


def test_real_redis_starts_a_new_window_after_the_old_one_expires(redis_client, account):
    key = throttle._key(account)
    for _ in range(3):
        throttle.record_failure(redis_client, account, window=60)
    assert redis_client.get(key) == b"3"
    redis_client.pexpire(key, 50)
    time.sleep(0.2)
    assert throttle.blocked_for(redis_client, account, limit=3) == 0
    throttle.record_failure(redis_client, account, window=30)
    assert redis_client.get(key) == b"1" and 0 < redis_client.ttl(key) <= 30


def test_real_redis_repairs_a_counter_without_an_expiry(redis_client, account):
    key = throttle._key(account)
    redis_client.set(key, 7)
    throttle.record_failure(redis_client, account, window=60)
    assert redis_client.get(key) == b"8" and 0 < redis_client.ttl(key) <= 60


def test_real_redis_keeps_both_windows_of_a_login_failure(redis_client, account, caplog):
    with caplog.at_level(logging.WARNING, logger=throttle.__name__):
        throttle.login_failed(redis_client, account, "10.0.0.1")
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    per_address, per_account = (throttle._key(c) for c in throttle._counters(account, "10.0.0.1"))
    assert redis_client.get(per_address) == b"1" and 0 < redis_client.ttl(per_address) <= 300
    assert redis_client.get(per_account) == b"1" and 300 < redis_client.ttl(per_account) <= 900
    throttle.login_succeeded(redis_client, account, "10.0.0.1")
    assert redis_client.get(per_address) is None and redis_client.get(per_account) == b"1"
