"""The index step: keeps each (tenant, namespace)'s read models (type counts; search documents where the
dialect searches them) caught up with its changes, off the push path.

Coalesced: a push asks for an index run with `request_index`; while one index job of that namespace is
still waiting in the queue, later requests join it (its idempotency key is `<namespace>:waiting` until it
starts), so a burst of pushes costs one index job, not one each. A job that starts gives the key up, so a
push that lands while it runs queues the next one. Each run folds changes from the namespace's watermark
(models.index), in bounded batches, each committed with the job's progress."""
from __future__ import annotations

from sqlalchemy import text

from models import index, jobs
from models.dialects import searched_namespaces
from models.kinds import INDEX
from workers.api import enqueue_after_commit

BATCH = 20_000  # changes folded per transaction


def waiting_key(namespace: str) -> str:
    return f"{namespace}:waiting"


def request_index(session, celery_app, *, tenant_id: str, namespace: str, parent_id=None,
                  delay: float = 0.0) -> None:
    """Make sure an index run of (tenant, namespace) starts after this transaction commits: join the one
    waiting in the queue, or queue one that starts `delay` seconds later (so the requests of that window
    join it)."""
    job_id = jobs.create_job_if_absent(session, tenant_id=tenant_id, kind=INDEX, idempotency_key=waiting_key(namespace),
                                       params={"namespace": namespace}, parent_id=parent_id)
    if job_id is not None:
        enqueue_after_commit(session, celery_app, job_id, INDEX.queue, countdown=delay)


def submit_index(session, ctx, *, namespace: str) -> None:
    """request_index for the namespace a running job (ctx) just changed. A re-run of a job that had
    already asked (its worker died after committing) asks nothing more: the run it asked for covers it."""
    if ctx.job.attempts > 1 and session.execute(
            text("SELECT 1 FROM jobs WHERE parent_id = :id AND kind = :kind LIMIT 1"),
            {"id": ctx.job.id, "kind": INDEX.name}).first() is not None:
        return
    request_index(session, ctx.runtime.celery_app, tenant_id=ctx.job.tenant_id, namespace=namespace,
                  parent_id=ctx.job.id, delay=ctx.settings.index_delay_seconds)


def run_index(ctx):
    namespace = ctx.job.params["namespace"]
    search = namespace in searched_namespaces(ctx.settings)
    with ctx.session() as session:
        # From here on a new request queues a new job: what commits after this point may be past our reads.
        session.execute(text("UPDATE jobs SET idempotency_key = :ns || ':' || CAST(id AS text) "
                             "WHERE id = :id AND idempotency_key = :key"),
                        {"ns": namespace, "id": ctx.job.id, "key": waiting_key(namespace)})
    totals = {"changes": int(ctx.counts.get("changes", 0)), "types": int(ctx.counts.get("types", 0)),
              "documents": int(ctx.counts.get("documents", 0))}
    while True:
        with ctx.session() as session:
            step = index.catch_up(session, ctx.job.tenant_id, namespace, search=search, limit=BATCH)
            for key in totals:
                totals[key] += step[key]
            totals["version"] = step["version"]
            ctx.progress(session, done=totals["changes"], counts=totals)
        if step["changes"] < BATCH:
            return totals


def register(registry, settings) -> None:
    registry.add(INDEX, run_index)
