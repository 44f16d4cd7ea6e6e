"""The chunked apply driver every ingest pipeline uses: it takes a stream of parsed items (valid records
and rejected ones, in input order), applies valid ones a chunk at a time through the engine, records the
rejected ones on the job, and commits each chunk together with the job's progress and checkpoint. A
redelivered job skips what its checkpoint says is done, so nothing is applied or counted twice."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from config import metrics
from models import jobs
from models.engine import ApplyResult, Incoming, apply_chunk, stage_stream
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
    copying = direct  # while every chunk so far went straight in
    hooks = ctx.hooks(namespace)
    source = (item for item in items if item.position >= start)  # what an earlier delivery applied is skipped
    state = {"last_position": start - 1}

    def chunk_of(first, rejected: list[Rejected]):
        """`first` and the items after it, up to a chunk: the valid ones yielded, the rejected ones kept."""
        item, taken = first, 0
        while item is not None:
            state["last_position"] = item.position
            if isinstance(item, Rejected):
                rejected.append(item)
            else:
                yield item
            taken += 1
            if taken >= chunk_size:
                return
            item = next(source, None)

    upcoming = next(source, None)
    if upcoming is None:  # nothing was left to apply (a redelivery past its checkpoint, or no items)
        with ctx.session() as session:
            if state["last_position"] < start and total is not None:
                ctx.progress(session, done=total, total=total, checkpoint=max(start, total), counts=counts)
            if on_end is not None:
                on_end(session, counts)
        return counts
    while upcoming is not None:
        rejected: list[Rejected] = []
        with ctx.session() as session:
            streamed = before_apply is None and not copying
            if streamed:
                # the chunk's records are validated and rendered as the staging COPY asks for them, so
                # this process prepares the next block while PostgreSQL parses the one before
                pending = stage_stream(session, chunk_of(upcoming, rejected), with_applied=bool(hooks))
            else:  # before_apply may drop records, a straight COPY takes the chunk whole: gathered first
                pending = list(chunk_of(upcoming, rejected))
            jobs.record_errors(session, ctx.job.id, [r.as_error() for r in rejected])
            if before_apply is not None:  # before the apply: from there to the commit the counter row is locked
                before_apply(session, pending)
            # the next chunk's first item (reading it may validate it): none means this chunk is the last
            upcoming = next(source, None)
            result = apply_chunk(session, tenant_id=ctx.job.tenant_id, namespace=namespace, records=pending,
                                 actor=ctx.job.created_by, origin=origin, transmission=transmission,
                                 job_id=ctx.job.id, client_since=client_since, hooks=hooks, staged=streamed,
                                 direct=copying)
            copying = copying and result.copied
            if on_chunk is not None:
                on_chunk(session, pending, result, rejected)
            counts["accepted"] += len(result.accepted)
            counts["duplicate"] += len(result.duplicates)
            counts["conflict"] += len(result.conflicts)
            counts["rejected"] += len(rejected)
            if result.max_version is not None:
                counts["max_version"] = max(result.max_version, counts["max_version"] or 0)
            done = state["last_position"] + 1
            ctx.progress(session, done=done, total=total, checkpoint=done, counts=counts)
            if upcoming is None and on_end is not None:
                on_end(session, counts)
        # committed: count the chunk's outcomes (the console's per-minute series and /metrics)
        metrics.count_records(namespace, {"accepted": len(result.accepted), "duplicate": len(result.duplicates),
                                          "conflict": len(result.conflicts), "rejected": len(rejected)})
        heartbeat.count_applied(ctx.runtime.redis_client(), len(result.accepted))
    return counts
