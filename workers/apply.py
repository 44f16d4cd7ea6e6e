"""The chunked apply driver every ingest pipeline uses: it takes a stream of parsed items (valid records
and rejected ones, in input order), applies valid ones a chunk at a time through the engine, records the
rejected ones on the job, and commits each chunk together with the job's progress and checkpoint. A
redelivered job skips what its checkpoint says is done, so nothing is applied or counted twice."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from config import metrics
from models import jobs
from models.engine import ApplyResult, Incoming, apply_chunk
from workers import heartbeat

COUNT_KEYS = ("accepted", "duplicate", "conflict", "rejected")


@dataclass
class Rejected:
    """A record that failed validation: reported, never stored."""
    position: int
    record_id: str | None
    code: str
    message: str
    path: str | None = None
    record: str | None = None  # the input as text (capped when stored)

    def as_error(self) -> dict:
        return {"position": self.position, "record_id": self.record_id, "code": self.code,
                "message": self.message, "path": self.path, "record": self.record}


ChunkHook = Callable[[object, list, ApplyResult, list], None]
EndHook = Callable[[object, dict], None]


def run_apply(ctx, items: Iterable[Incoming | Rejected], *, namespace: str, origin: str | None,
              transmission: str | None = None, client_since: int | None = None, total: int | None = None,
              on_chunk: ChunkHook | None = None, on_end: EndHook | None = None,
              before_apply: Callable[[object, list], None] | None = None, chunk_size: int | None = None,
              direct: bool = False) -> dict:
    """Returns the job's counts. `on_chunk(session, records, result, rejected)` runs inside each chunk's
    transaction (e.g. to write a dialect's own side tables); `before_apply(session, records)` too, but
    before the apply takes the tenant's counter lock (writes that need no version: they then do not
    lengthen the time the lock is held). `on_end(session, counts)` runs once, inside the last chunk's
    transaction (or one of its own when nothing was left to apply), after its progress: a pipeline
    stores its answer and ends the job there (ctx.finish), so a push of one chunk commits once.
    `chunk_size`: items per chunk, when the pipeline wants other than the configured CHUNK_SIZE.
    `direct`: a bulk load of mostly new keys: chunks are COPYed straight into the records while they turn
    out to be all new (models.engine.apply_chunk's `direct`); after the first that is not, they merge."""
    counts = {key: int(ctx.counts.get(key, 0)) for key in COUNT_KEYS}
    counts["max_version"] = ctx.counts.get("max_version")
    start = ctx.job.checkpoint
    chunk_size = chunk_size or ctx.settings.chunk_size
    pending: list[Incoming] = []
    rejected: list[Rejected] = []
    last_position = start - 1
    copying = [direct]

    def flush(last: bool = False) -> bool:
        nonlocal pending, rejected
        if not pending and not rejected:
            return False
        with ctx.session() as session:
            # before the apply: from there to the commit the tenant's counter row is locked
            jobs.record_errors(session, ctx.job.id, [r.as_error() for r in rejected])
            if before_apply is not None:
                before_apply(session, pending)
            result = apply_chunk(session, tenant_id=ctx.job.tenant_id, namespace=namespace, records=pending,
                                 actor=ctx.job.created_by, origin=origin, transmission=transmission,
                                 job_id=ctx.job.id, client_since=client_since, hooks=ctx.hooks(namespace),
                                 direct=copying[0])
            copying[0] = copying[0] and result.copied
            if on_chunk is not None:
                on_chunk(session, pending, result, rejected)
            counts["accepted"] += len(result.accepted)
            counts["duplicate"] += len(result.duplicates)
            counts["conflict"] += len(result.conflicts)
            counts["rejected"] += len(rejected)
            if result.max_version is not None:
                counts["max_version"] = max(result.max_version, counts["max_version"] or 0)
            done = last_position + 1
            ctx.progress(session, done=done, total=total, checkpoint=done, counts=counts)
            if last and on_end is not None:
                on_end(session, counts)
        # committed: count the chunk's outcomes (the console's per-minute series and /metrics)
        chunk_counts = {"accepted": len(result.accepted), "duplicate": len(result.duplicates),
                        "conflict": len(result.conflicts), "rejected": len(rejected)}
        metrics.count_records(namespace, chunk_counts)
        heartbeat.count_applied(ctx.runtime.redis_client(), len(result.accepted))
        pending, rejected = [], []
        return True

    for item in items:
        if item.position < start:
            continue  # applied by an earlier delivery of this job
        if len(pending) + len(rejected) >= chunk_size:
            flush()  # a full chunk, and more follows (the last one waits for the end, for on_end)
        last_position = item.position
        if isinstance(item, Rejected):
            rejected.append(item)
        else:
            pending.append(item)
    if not flush(last=True):  # nothing was left to apply (a redelivery past its checkpoint, or no items)
        with ctx.session() as session:
            if last_position < start and total is not None:
                ctx.progress(session, done=total, total=total, checkpoint=max(start, total), counts=counts)
            if on_end is not None:
                on_end(session, counts)
    return counts
