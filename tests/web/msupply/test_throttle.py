"""The Redis login throttle helper (fakeredis: a unit test of the counting rules only)."""
import fakeredis

from web.msupply import throttle


def test_blocks_after_the_limit_until_the_window_ends():
    r = fakeredis.FakeRedis()
    for _ in range(3):
        assert throttle.blocked_for(r, "site:a", limit=3) == 0
        throttle.record_failure(r, "site:a", window=60)
    assert 0 < throttle.blocked_for(r, "site:a", limit=3) <= 60
    assert throttle.blocked_for(r, "site:b", limit=3) == 0
    throttle.clear(r, "site:a")
    assert throttle.blocked_for(r, "site:a", limit=3) == 0


def test_the_window_is_not_extended_by_later_failures():
    r = fakeredis.FakeRedis()
    throttle.record_failure(r, "site:a", window=60)
    r.expire(throttle._key("site:a"), 5)
    throttle.record_failure(r, "site:a", window=60)
    assert r.ttl(throttle._key("site:a")) <= 5


def test_redis_down_lets_the_password_check_decide():
    class Down:
        def pipeline(self):
            raise ConnectionError("down")

        def delete(self, *a):
            raise ConnectionError("down")
    assert throttle.blocked_for(Down(), "site:a") == 0
    throttle.record_failure(Down(), "site:a")
    throttle.clear(Down(), "site:a")
