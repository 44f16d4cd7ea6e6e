"""Unit tests of the Redis doorbell helper (fakeredis)."""
import fakeredis

from workers import doorbell


def test_ring_then_wait_returns_at_once_and_stays_rung():
    r = fakeredis.FakeRedis()
    doorbell.ring(r, "j1")
    assert doorbell.wait(r, "j1", 1) is True
    assert doorbell.wait(r, "j1", 1) is True  # a second waiter also wakes


def test_wait_times_out_without_ring():
    r = fakeredis.FakeRedis()
    assert doorbell.wait(r, "j2", 0.2) is False
    assert doorbell.wait(r, "j2", 0) is False


def test_broken_redis_is_not_fatal():
    class Broken:
        def pipeline(self):
            raise ConnectionError("down")

        def blpop(self, *a, **k):
            raise ConnectionError("down")

    doorbell.ring(Broken(), "j3")
    assert doorbell.wait(Broken(), "j3", 0.1) is False
