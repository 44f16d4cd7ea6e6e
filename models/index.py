"""The index step's SQL: fold a (tenant, namespace)'s changes into its read models, from the version its
watermark says is done, in one bounded batch per call. The deltas come from the audit rows (type and
tombstone state before and after each change), so a batch only ever adds what it read, and the watermark
row, locked for the batch, makes sure no change is folded twice. Functions take a session and never
commit it."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCK_WATERMARK = """
    INSERT INTO read_index_watermarks AS w (tenant_id, namespace, version) VALUES (:t, :ns, 0)
    ON CONFLICT (tenant_id, namespace) DO UPDATE SET version = w.version  -- takes the row lock either way
    RETURNING version
"""

_FOLD = """
WITH ch AS MATERIALIZED (
    -- the primary key (tenant_id, version) serves this in version order; versions are handed out in
    -- commit order, so every change below the newest one read here is already visible
    SELECT record_key, record_type, deleted, old_record_type, old_deleted, version FROM record_changes
     WHERE tenant_id = :t AND version > :w AND namespace = :ns
     ORDER BY version LIMIT :n
), delta AS (
    SELECT record_type, CASE WHEN deleted THEN 0 ELSE 1 END AS live, CASE WHEN deleted THEN 1 ELSE 0 END AS dead,
           version FROM ch
    UNION ALL
    SELECT old_record_type, CASE WHEN old_deleted THEN 0 ELSE -1 END, CASE WHEN old_deleted THEN -1 ELSE 0 END,
           version FROM ch WHERE old_record_type IS NOT NULL
), counted AS (
    INSERT INTO read_type_counts AS c (tenant_id, namespace, record_type, live, deleted, as_of_version)
    SELECT :t, :ns, record_type, sum(live), sum(dead), max(version) FROM delta GROUP BY record_type
    ON CONFLICT (tenant_id, namespace, record_type) DO UPDATE
       SET live = c.live + EXCLUDED.live, deleted = c.deleted + EXCLUDED.deleted,
           as_of_version = GREATEST(c.as_of_version, EXCLUDED.as_of_version)
    RETURNING 1
)
SELECT (SELECT count(*) FROM ch) AS changes, (SELECT max(version) FROM ch) AS top,
       (SELECT count(*) FROM counted) AS types,
       (SELECT array_agg(DISTINCT record_key) FROM ch) AS keys
"""

_SEARCH_DOCUMENTS = """
WITH current AS MATERIALIZED (
    SELECT r.* FROM unnest(CAST(:keys AS text[])) AS c(record_key) CROSS JOIN LATERAL (
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
"""


def watermark(session: Session, tenant_id: str, namespace: str) -> int:
    value = session.execute(text("SELECT version FROM read_index_watermarks WHERE tenant_id = :t AND namespace = :ns"),
                            {"t": tenant_id, "ns": namespace}).scalar()
    return int(value or 0)


def catch_up(session: Session, tenant_id: str, namespace: str, *, search: bool, limit: int) -> dict:
    """Fold up to `limit` changes past the watermark into the type counts (and, when `search`, the search
    documents of the records they touched), then move the watermark. Holds the watermark row's lock until
    the caller commits: a second index job of the same namespace waits, then starts where this one ended.
    Returns {"changes", "types", "documents", "version"}; fewer than `limit` changes means caught up."""
    start = session.execute(text(_LOCK_WATERMARK), {"t": tenant_id, "ns": namespace}).scalar_one()
    row = session.execute(text(_FOLD), {"t": tenant_id, "ns": namespace, "w": start, "n": limit}).one()
    documents = 0
    if row.changes and search:
        documents = session.execute(text(_SEARCH_DOCUMENTS), {"t": tenant_id, "ns": namespace,
                                                              "keys": list(row.keys)}).rowcount
    if row.top is not None:
        session.execute(text("UPDATE read_index_watermarks SET version = :v, updated_at = now() "
                             "WHERE tenant_id = :t AND namespace = :ns"),
                        {"v": row.top, "t": tenant_id, "ns": namespace})
    return {"changes": int(row.changes), "types": int(row.types), "documents": documents,
            "version": int(row.top if row.top is not None else start)}
