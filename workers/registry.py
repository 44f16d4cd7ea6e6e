"""Job kinds: each kind names its queue and the pipeline function that runs it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from config.settings import QUEUE_INGEST


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str
    run: Callable  # run(ctx: JobContext) -> dict | None (result stored on the job)


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, queue: str = QUEUE_INGEST):
    def register(fn):
        _KINDS[name] = JobKind(name=name, queue=queue, run=fn)
        return fn
    return register


def get_kind(name: str) -> JobKind | None:
    load_all()
    return _KINDS.get(name)


def queue_for(name: str) -> str:
    kind = get_kind(name)
    if kind is None:
        raise KeyError(f"unknown job kind {name!r}")
    return kind.queue


def load_all() -> None:
    """Import every module that registers job kinds (kept in one list so the worker knows them all)."""
    import workers.builtin_jobs  # noqa: F401
    import workers.sync_jobs  # noqa: F401
    import workers.msupply_jobs  # noqa: F401
    import workers.digit_jobs  # noqa: F401
