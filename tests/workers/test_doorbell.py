"""Unit tests of the Redis doorbell helper (fakeredis)."""
import fakeredis
import pytest

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


class _Clock:
    """A fake monotonic clock that advances only when the code under test sleeps or waits."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class _DeadRedis:
    def blpop(self, *a, **kw):
        raise ConnectionError("redis is down")


def test_wait_until_backs_off_while_the_doorbell_is_down():
    from workers.doorbell import BACKOFF_MAX, wait_until
    clock, checks = _Clock(), []
    answer = wait_until(_DeadRedis(), "job", 20.0, lambda: checks.append(clock.now), sleep=clock.sleep, clock=clock)
    assert answer is None
    # a tight loop would check every few milliseconds; backing off it checks a handful of times
    assert len(checks) <= 16, checks
    assert clock.sleeps[:4] == [0.25, 0.5, 1.0, 2.0] and max(clock.sleeps) == BACKOFF_MAX
    assert clock.now == pytest.approx(20.0)


def test_wait_until_returns_as_soon_as_the_check_answers():
    from workers.doorbell import wait_until
    clock, calls = _Clock(), []

    def check():
        calls.append(1)
        return "done" if len(calls) == 3 else None

    assert wait_until(_DeadRedis(), "job", 20.0, check, sleep=clock.sleep, clock=clock) == "done"
    assert len(calls) == 3 and clock.now < 1.0


def test_wait_until_wakes_on_the_ring(redis_client):
    import threading
    import time
    import uuid

    from workers.doorbell import ring, wait_until
    job_id = uuid.uuid4().hex
    done = []
    threading.Timer(0.3, lambda: (done.append(1), ring(redis_client, job_id))).start()
    started = time.monotonic()
    assert wait_until(redis_client, job_id, 10.0, lambda: True if done else None) is True
    assert time.monotonic() - started < 2.0
