"""Job kinds: a kind is a constant naming what a job does and the queue it runs on. The engine's own
kinds are here; each dialect declares its kinds in `models/<dialect>/__init__.py`. The web front submits
jobs by these constants alone; only workers know which pipeline runs a kind."""
from __future__ import annotations

from dataclasses import dataclass

from config.settings import ALL_QUEUES, QUEUE_EXPORTS, QUEUE_INDEX


@dataclass(frozen=True)
class JobKind:
    name: str
    queue: str

    def __post_init__(self):
        if self.queue not in ALL_QUEUES:
            raise ValueError(f"job kind {self.name}: unknown queue {self.queue!r}")


INDEX = JobKind("engine.index", QUEUE_INDEX)
# An analyst export of one namespace to Parquet files and a manifest (workers.exports).
EXPORT = JobKind("engine.export", QUEUE_EXPORTS)
# One probe per queue: an ops check that a worker for that queue is alive and progressing.
PROBES = {queue: JobKind(f"probe.{queue}", queue) for queue in ALL_QUEUES}
