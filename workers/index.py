"""The index step: a separate, idempotent job per applied job that refreshes derived read models —
live/deleted counts per schema type and a full-text search document per changed record."""
from __future__ import annotations

from sqlalchemy import text

from config.settings import QUEUE_INDEX
from workers.registry import job_kind

KIND = "engine.index"


def submit_index(session, ctx, *, namespace: str) -> None:
    """Queue the index job for ctx's job (once: keyed by the source job id)."""
    from workers.api import submit_job
    submit_job(session, ctx.runtime.celery_app, tenant_id=ctx.job.tenant_id, kind=KIND,
               idempotency_key=str(ctx.job.id), params={"source_job": str(ctx.job.id), "namespace": namespace},
               parent_id=ctx.job.id)


def refresh(session, tenant_id: str, namespace: str, source_job: str) -> dict:
    """Recompute read models for what `source_job` changed. Set-based and safe to run again."""
    docs = session.execute(text("""
        -- Materialised and keyed by job_id alone so the plan always starts from the job's few keys and
        -- looks records up by primary key, whatever the (possibly stale) table statistics say.
        WITH changed AS MATERIALIZED (
            SELECT DISTINCT record_key FROM record_changes WHERE job_id = CAST(:j AS uuid)
        ), current AS MATERIALIZED (
            SELECT r.* FROM changed c CROSS JOIN LATERAL (
                SELECT record_key, record_type, version, deleted, data FROM records
                 WHERE tenant_id = :t AND namespace = :ns AND record_key = c.record_key) r
        ), gone AS (
            DELETE FROM read_search_documents d USING current r
             WHERE d.tenant_id = :t AND d.namespace = :ns AND d.record_key = r.record_key AND r.deleted
            RETURNING 1
        )
        INSERT INTO read_search_documents (tenant_id, namespace, record_key, record_type, version, body)
        SELECT :t, :ns, r.record_key, r.record_type, r.version,
               COALESCE((SELECT string_agg(v, ' ') FROM jsonb_path_query(r.data, 'strict $.**') AS p(j),
                         LATERAL (SELECT p.j #>> '{}' AS v) s WHERE jsonb_typeof(p.j) IN ('string', 'number')), '')
          FROM current r
         WHERE NOT r.deleted
        ON CONFLICT (tenant_id, namespace, record_key) DO UPDATE
           SET body = EXCLUDED.body, version = EXCLUDED.version, record_type = EXCLUDED.record_type
         WHERE read_search_documents.version < EXCLUDED.version
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    types = session.execute(text("""
        WITH changed AS MATERIALIZED (
            SELECT DISTINCT record_key FROM record_changes WHERE job_id = CAST(:j AS uuid)
        ), types AS MATERIALIZED (
            SELECT DISTINCT r.record_type FROM changed c CROSS JOIN LATERAL (
                SELECT record_type FROM records WHERE tenant_id = :t AND namespace = :ns AND record_key = c.record_key) r
        )
        INSERT INTO read_type_counts (tenant_id, namespace, record_type, live, deleted, as_of_version)
        SELECT :t, :ns, ty.record_type, n.live, n.deleted, n.top
          FROM types ty CROSS JOIN LATERAL (
               SELECT count(*) FILTER (WHERE NOT deleted) AS live, count(*) FILTER (WHERE deleted) AS deleted,
                      COALESCE(max(version), 0) AS top
                 FROM records WHERE tenant_id = :t AND namespace = :ns AND record_type = ty.record_type) n
        ON CONFLICT (tenant_id, namespace, record_type) DO UPDATE
           SET live = EXCLUDED.live, deleted = EXCLUDED.deleted, as_of_version = EXCLUDED.as_of_version
         WHERE read_type_counts.as_of_version <= EXCLUDED.as_of_version
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    return {"documents": docs, "types": types}


@job_kind(KIND, queue=QUEUE_INDEX)
def run_index(ctx):
    with ctx.session() as session:
        result = refresh(session, ctx.job.tenant_id, ctx.job.params["namespace"], ctx.job.params["source_job"])
        ctx.progress(session, done=1, total=1, checkpoint=1, counts=result)
    return result
