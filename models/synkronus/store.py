"""The SQL that serves Synkronus: feed rows rendered as wire JSON inside PostgreSQL (a pull then joins
ready-made text instead of parsing and re-encoding every record in Python), and each client's pull cursor."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from models import engine
from models.synkronus import NAMESPACE


def _rfc3339(column: str) -> str:
    """fs_rfc3339(column) for a pull page, at a quarter of its cost: the text of a UTC timestamp in the
    ISO DateStyle (which models.engine.feed_page sets for the page, and psycopg2 needs anyway) is the
    same ISO 8601 with a space for the T, fractional seconds without trailing zeros as well."""
    return f"replace(({column} AT TIME ZONE 'UTC')::text, ' ', 'T') || 'Z'"


# A Synkronus 1.0.3 observation (plus its `version`). synced_at: the client's when it sent one, else the
# time the server stored the record.
OBSERVATION_JSON = """version, (
    '{"observation_id":' || to_json(record_key)::text
    || ',"form_type":' || to_json(record_type)::text
    || ',"form_version":' || to_json(schema_version)::text
    || ',"data":' || COALESCE(data::text, '{}')
    || ',"created_at":"' || {created}
    || '","updated_at":"' || {updated}
    || '","synced_at":' || COALESCE((meta->'synced_at')::text, '"' || {updated} || '"')
    || ',"deleted":' || CASE WHEN deleted THEN 'true' ELSE 'false' END
    || ',"geolocation":' || COALESCE(geolocation::text, 'null')
    || ',"version":' || version::text || '}') AS json""".replace("{created}", _rfc3339("created_at")).replace(
    "{updated}", _rfc3339("updated_at"))


# The fixed columns of /dataexport/parquet, in order: (name, SQL, kind, nullable). synced_at as a pull
# reports it; geolocation as stored (the real server's is always null, as push never stores it there).
EXPORT_COLUMNS = (
    ("observation_id", "record_key", "utf8", False),
    ("form_type", "record_type", "utf8", False),
    ("form_version", "schema_version", "utf8", False),
    ("created_at", "fs_rfc3339(created_at)", "utf8", False),
    ("updated_at", "fs_rfc3339(updated_at)", "utf8", False),
    ("synced_at", "COALESCE(meta ->> 'synced_at', fs_rfc3339(updated_at))", "utf8", True),
    ("deleted", "deleted", "bool", True),
    ("version", "version", "int64", True),
    ("geolocation", "geolocation::text", "utf8", True),
)
EXPORT_ORDER = "created_at, record_key"


def client_cursor(session: Session, tenant_id: str, client_id: str) -> int | None:
    """The version of the client's last complete pull, or None when it never finished one."""
    return session.execute(text("SELECT pulled_version FROM client_cursors WHERE tenant_id = :t AND namespace = :n "
                                "AND client_id = :c"), {"t": tenant_id, "n": NAMESPACE, "c": client_id}).scalar()


def advance_cursor(session: Session, tenant_id: str, client_id: str, version: int) -> None:
    """Remember that the client has pulled everything up to `version` (never moves backwards)."""
    session.execute(text("""
        INSERT INTO client_cursors (tenant_id, namespace, client_id, pulled_version) VALUES (:t, :n, :c, :v)
        ON CONFLICT (tenant_id, namespace, client_id) DO UPDATE
           SET pulled_version = GREATEST(client_cursors.pulled_version, EXCLUDED.pulled_version),
               updated_at = now()"""), {"t": tenant_id, "n": NAMESPACE, "c": client_id, "v": version})


def safe_current_version(session: Session, tenant_id: str, client_id: str) -> int:
    """What a push may tell the client as its next `since`: never above what it has pulled, so changes
    other clients made meanwhile are not skipped (the client re-pulls its own records and ignores them)."""
    return int(session.execute(text("""
        SELECT LEAST(COALESCE((SELECT value FROM sync_counters WHERE tenant_id = :t), 1),
                     COALESCE((SELECT pulled_version FROM client_cursors
                                WHERE tenant_id = :t AND namespace = :n AND client_id = :c), 0))
    """), {"t": tenant_id, "n": NAMESPACE, "c": client_id}).scalar_one())


def pull_page(session: Session, tenant_id: str, *, since: int, limit: int, record_types: list[str] | None,
              proof: tuple[str, dict] | None = None):
    """(counter, rows, proven) for one pull page: rows of (version, json), read with the counter in one
    snapshot (models.engine.feed_page, which also evaluates `proof`)."""
    return engine.feed_page(session, tenant_id=tenant_id, namespace=NAMESPACE, since=since, limit=limit,
                            record_types=record_types, columns=OBSERVATION_JSON, proof=proof)


def push_errors(session: Session, job_id):
    """The push job's per-record errors and warnings, in input order."""
    return session.execute(text("""
        SELECT position, record_id, code, message, record, severity FROM job_record_errors
         WHERE job_id = :j ORDER BY position, id"""), {"j": str(job_id)}).all()


def list_cursors(session: Session, tenant_id: str | None = None, limit: int = 1000):
    """Clients and their last complete pull, most recent first."""
    where = "AND tenant_id = :t" if tenant_id is not None else ""
    return session.execute(text(f"""
        SELECT tenant_id, client_id, pulled_version, updated_at FROM client_cursors
         WHERE namespace = :n {where} ORDER BY updated_at DESC LIMIT :limit
    """), {"n": NAMESPACE, "t": tenant_id, "limit": limit}).all()
