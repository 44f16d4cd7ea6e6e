"""The index step: a separate, idempotent job per applied job that refreshes derived read models —
live/deleted counts per schema type (by deltas) and a full-text search document per changed record."""
from __future__ import annotations

from sqlalchemy import text

from models.kinds import INDEX
from workers.api import submit_job


def submit_index(session, ctx, *, namespace: str) -> None:
    """Queue the index job for ctx's job (once: keyed by the source job id)."""
    submit_job(session, ctx.runtime.celery_app, tenant_id=ctx.job.tenant_id, kind=INDEX,
               idempotency_key=str(ctx.job.id), params={"source_job": str(ctx.job.id), "namespace": namespace},
               parent_id=ctx.job.id)


def refresh(session, tenant_id: str, namespace: str, source_job: str) -> dict:
    """Fold what `source_job` changed into the read models. The count deltas come from the job's audit
    rows (type and tombstone state before and after each change), so they commute with other jobs'
    deltas; a mark row makes a second run a no-op."""
    marked = session.execute(text("INSERT INTO read_index_marks (source_job) VALUES (CAST(:j AS uuid)) "
                                  "ON CONFLICT DO NOTHING RETURNING 1"), {"j": source_job}).scalar()
    if marked is None:
        return {"documents": 0, "types": 0, "already_indexed": True}
    types = session.execute(text("""
        WITH ch AS MATERIALIZED (
            SELECT record_type, deleted, old_record_type, old_deleted, version FROM record_changes
             WHERE job_id = CAST(:j AS uuid)
        ), delta AS (
            SELECT record_type, CASE WHEN deleted THEN 0 ELSE 1 END AS live, CASE WHEN deleted THEN 1 ELSE 0 END AS dead,
                   version FROM ch
            UNION ALL
            SELECT old_record_type, CASE WHEN old_deleted THEN 0 ELSE -1 END, CASE WHEN old_deleted THEN -1 ELSE 0 END,
                   version FROM ch WHERE old_record_type IS NOT NULL
        )
        INSERT INTO read_type_counts AS c (tenant_id, namespace, record_type, live, deleted, as_of_version)
        SELECT :t, :ns, record_type, sum(live), sum(dead), max(version) FROM delta GROUP BY record_type
        ON CONFLICT (tenant_id, namespace, record_type) DO UPDATE
           SET live = c.live + EXCLUDED.live, deleted = c.deleted + EXCLUDED.deleted,
               as_of_version = GREATEST(c.as_of_version, EXCLUDED.as_of_version)
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    docs = session.execute(text("""
        -- Materialised and keyed by job_id alone so the plan always starts from the job's few keys and
        -- looks records up by primary key, whatever the (possibly stale) table statistics say.
        WITH changed AS MATERIALIZED (
            SELECT DISTINCT record_key FROM record_changes WHERE job_id = CAST(:j AS uuid)
        ), current AS MATERIALIZED (
            SELECT r.* FROM changed c CROSS JOIN LATERAL (
                SELECT record_key, record_type, version, deleted, data FROM records
                 WHERE tenant_id = :t AND namespace = :ns AND record_key = c.record_key
                 LIMIT 1) r  -- LIMIT keeps the planner from flattening this into a join
        ), gone AS (
            DELETE FROM read_search_documents d USING current r
             WHERE d.tenant_id = :t AND d.namespace = :ns AND d.record_key = r.record_key AND r.deleted
            RETURNING 1
        )
        INSERT INTO read_search_documents AS d (tenant_id, namespace, record_key, record_type, version, body)
        SELECT :t, :ns, r.record_key, r.record_type, r.version, r.data::text
          FROM current r
         WHERE NOT r.deleted
        ON CONFLICT (tenant_id, namespace, record_key) DO UPDATE
           SET body = EXCLUDED.body, version = EXCLUDED.version, record_type = EXCLUDED.record_type
         WHERE d.version < EXCLUDED.version
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    return {"documents": docs, "types": types}


def run_index(ctx):
    with ctx.session() as session:
        result = refresh(session, ctx.job.tenant_id, ctx.job.params["namespace"], ctx.job.params["source_job"])
        ctx.progress(session, done=1, total=1, checkpoint=1, counts=result)
    return result


def register(registry, settings) -> None:
    registry.add(INDEX, run_index)
