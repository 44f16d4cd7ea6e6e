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
        WITH changed AS (
            SELECT DISTINCT record_key FROM record_changes
             WHERE tenant_id = :t AND namespace = :ns AND job_id = CAST(:j AS uuid)
        ), gone AS (
            DELETE FROM read_search_documents d USING changed c, records r
             WHERE d.tenant_id = :t AND d.namespace = :ns AND d.record_key = c.record_key
               AND r.tenant_id = :t AND r.namespace = :ns AND r.record_key = c.record_key AND r.deleted
            RETURNING 1
        )
        INSERT INTO read_search_documents (tenant_id, namespace, record_key, record_type, version, body)
        SELECT r.tenant_id, r.namespace, r.record_key, r.record_type, r.version,
               COALESCE((SELECT string_agg(v, ' ') FROM jsonb_path_query(r.data, 'strict $.**') AS p(j),
                         LATERAL (SELECT p.j #>> '{}' AS v) s WHERE jsonb_typeof(p.j) IN ('string', 'number')), '')
          FROM records r JOIN changed c ON r.record_key = c.record_key
         WHERE r.tenant_id = :t AND r.namespace = :ns AND NOT r.deleted
        ON CONFLICT (tenant_id, namespace, record_key) DO UPDATE
           SET body = EXCLUDED.body, version = EXCLUDED.version, record_type = EXCLUDED.record_type
         WHERE read_search_documents.version < EXCLUDED.version
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    types = session.execute(text("""
        WITH types AS (
            SELECT DISTINCT r.record_type FROM record_changes ch
              JOIN records r ON r.tenant_id = ch.tenant_id AND r.namespace = ch.namespace AND r.record_key = ch.record_key
             WHERE ch.tenant_id = :t AND ch.namespace = :ns AND ch.job_id = CAST(:j AS uuid)
        )
        INSERT INTO read_type_counts (tenant_id, namespace, record_type, live, deleted, as_of_version)
        SELECT :t, :ns, ty.record_type,
               count(r.*) FILTER (WHERE NOT r.deleted), count(r.*) FILTER (WHERE r.deleted),
               COALESCE(max(r.version), 0)
          FROM types ty LEFT JOIN records r ON r.tenant_id = :t AND r.namespace = :ns AND r.record_type = ty.record_type
         GROUP BY ty.record_type
        ON CONFLICT (tenant_id, namespace, record_type) DO UPDATE
           SET live = EXCLUDED.live, deleted = EXCLUDED.deleted, as_of_version = EXCLUDED.as_of_version
    """), {"t": tenant_id, "ns": namespace, "j": source_job}).rowcount
    return {"documents": docs, "types": types}


@job_kind(KIND, queue=QUEUE_INDEX)
def run_index(ctx):
    with ctx.session() as session:
        result = refresh(session, ctx.job.tenant_id, ctx.job.params["namespace"], ctx.job.params["source_job"])
        ctx.progress(session, done=1, total=1, checkpoint=1, counts=result)
    return result
