"""What a pipeline step needs at run time (settings, database, blobs, Redis), built lazily per process
so that a forked Celery child never reuses its parent's connections."""
from __future__ import annotations

import os
from functools import cached_property

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from models.blobs import BlobStore
from models.db import engine_for, make_session_factory
from models.dialects import after_apply_hooks
from workers.dialects import build_registry


def redis_client(url: str) -> redis.Redis:
    """A Redis client that fails fast: Redis holds only short-lived state here (the broker, doorbells,
    throttle counters), and every caller has a fallback, so a down Redis must cost one short timeout per
    call, not a series of retries with back-off."""
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


class Runtime:
    def __init__(self, settings: Settings, session_factory: sessionmaker[Session] | None = None):
        self.settings = settings
        self._given_factory = session_factory
        self._pid = os.getpid()
        self.celery_app = None  # set by make_celery: pipelines that start follow-up jobs send through it

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            for name in ("engine", "session_factory", "redis"):
                self.__dict__.pop(name, None)

    @cached_property
    def engine(self):
        return engine_for(self.settings, "worker")

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        if self._given_factory is not None:
            return self._given_factory
        return make_session_factory(self.engine)

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings.redis_url)

    @cached_property
    def registry(self):
        """The job kinds this worker runs (built on first use: a web process that only sends never does)."""
        return build_registry(self.settings)

    @cached_property
    def hooks(self) -> dict:
        """{namespace: [after-apply hook, …]} of the served dialects."""
        return after_apply_hooks(self.settings)

    def hooks_for(self, namespace: str) -> list:
        return self.hooks.get(namespace, [])

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.settings.blob_dir)

    def sessions(self) -> sessionmaker[Session]:
        self._check_fork()
        return self.session_factory

    def redis_client(self) -> redis.Redis:
        self._check_fork()
        return self.redis
