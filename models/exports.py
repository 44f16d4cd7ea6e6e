"""The SQL of exports: which keys and JSON types a range of records holds, how it splits into files, the
SELECT that renders one file's rows as flat columns (rendered by PostgreSQL, streamed out with COPY), and
export schedules. Functions take a session and never commit it."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.engine import feed_key
from models.tables import ExportSchedule

# JSON types as jsonb_typeof names them
NUMBER, BOOLEAN, STRING, NULL = "number", "boolean", "string", "null"

# work_mem of an export's transaction (per sort or hash, in each parallel worker too): PostgreSQL's memory,
# bounded; a larger sort still spills to temporary files
EXPORT_WORK_MEM = "64MB"


@dataclass(frozen=True)
class Scope:
    """The records one export reads: one tenant's namespace, versions in (since, until]."""
    tenant_id: str
    namespace: str
    since: int
    until: int
    record_types: tuple[str, ...] = ()
    live_only: bool = False  # leave deleted records out (Synkronus's ZIP); otherwise they are rows

    def where(self) -> tuple[str, dict]:
        clauses = ["feed_key = :fk", "version > :since", "version <= :until"]
        params = {"fk": feed_key(self.tenant_id, self.namespace), "since": self.since, "until": self.until}
        if self.record_types:
            clauses.append("record_type = ANY(:types)")
            params["types"] = list(self.record_types)
        if self.live_only:
            clauses.append("NOT deleted")
        return " AND ".join(clauses), params


def snapshot(session: Session, imported: str | None = None) -> None:
    """Make the session's transaction one read-only snapshot (call first): the plan of an export and
    every file it writes then see the same rows; with `imported` (an export_snapshot() of a transaction
    still open), the same snapshot as that transaction. (JIT is off on every connection of the engine:
    models.db.make_engine.) work_mem is EXPORT_WORK_MEM for it: a file in an order no index serves (the
    Synkronus ZIP's created_at) is sorted before its first row leaves, and at the default 4 MB that sort
    runs through temporary files."""
    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    if imported is not None:
        session.execute(text("SET TRANSACTION SNAPSHOT :id"), {"id": imported})
    session.execute(text(f"SET LOCAL work_mem = '{EXPORT_WORK_MEM}'"))


def export_snapshot(session: Session) -> str:
    """The id of the session's snapshot, for snapshot(imported=…) on another connection while this
    transaction stays open."""
    return session.execute(text("SELECT pg_export_snapshot()")).scalar_one()


def key_types(session: Session, scope: Scope, record_type: str | None = None) -> dict[str, dict[str, set[str]]]:
    """{record_type: {top-level data key: {JSON types seen}}} over the scope (or over its records of one
    record type), computed in PostgreSQL."""
    where, params = scope.where()
    if record_type is not None:
        where += " AND record_type = :rtype"
        params["rtype"] = record_type
    rows = session.execute(text(f"""
        SELECT r.record_type, k.key, jsonb_typeof(k.value) AS json_type
          FROM records r
         CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(r.data) = 'object' THEN r.data
                                            ELSE '{{}}'::jsonb END) k
         WHERE {where}
         GROUP BY 1, 2, 3"""), params).all()
    found: dict[str, dict[str, set[str]]] = {}
    for record_type, key, json_type in rows:
        found.setdefault(record_type, {}).setdefault(key, set()).add(json_type)
    return found


def partitions(session: Session, scope: Scope, *, by_day: bool) -> list[tuple[str, str | None, int]]:
    """(record_type, UTC day of created_at or None, rows) for every non-empty part, in order."""
    where, params = scope.where()
    day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')" if by_day else "NULL::text"
    rows = session.execute(text(f"""
        SELECT record_type, {day} AS day, count(*) AS n FROM records WHERE {where}
         GROUP BY 1, 2 ORDER BY record_type COLLATE "C", 2"""), params).all()
    return [(r.record_type, r.day, int(r.n)) for r in rows]


def value_sql(param: str, arrow_kind: str) -> str:
    """One data key as a flat column (the key is the bound parameter `param`): a float8, a boolean, or
    text (a string as itself, anything else as its JSON text; a missing key or JSON null is NULL)."""
    ref = f"data -> %({param})s"
    if arrow_kind == "float64":
        return f"CASE WHEN jsonb_typeof({ref}) = 'number' THEN ({ref})::float8 END"
    if arrow_kind == "bool":
        return f"CASE WHEN jsonb_typeof({ref}) = 'boolean' THEN ({ref})::boolean END"
    return (f"CASE jsonb_typeof({ref}) WHEN 'string' THEN data ->> %({param})s WHEN 'null' THEN NULL "
            f"ELSE ({ref})::text END")


# The engine's own columns of a generic export, in order: (name, SQL, arrow kind). Times leave
# PostgreSQL as microseconds since the epoch and become timestamp[us, UTC] columns.
ENGINE_COLUMNS = (
    ("_key", "record_key", "utf8"),
    ("_type", "record_type", "utf8"),
    ("_schema_version", "schema_version", "utf8"),
    ("_version", "version", "int64"),
    ("_deleted", "deleted", "bool"),
    ("_created_at", "(extract(epoch FROM created_at) * 1000000)::int8", "timestamp"),
    ("_updated_at", "(extract(epoch FROM updated_at) * 1000000)::int8", "timestamp"),
    ("_geolocation", "geolocation::text", "utf8"),
)


def file_select(scope: Scope, *, fixed: list[tuple[str, str]], keys: list[tuple[str, str]],
                overflow_keys: list[str] | None, record_type: str | None, day: str | None,
                order_by: str) -> tuple[str, dict]:
    """The SELECT (psycopg2 `%(name)s` parameters) of one file: the fixed column expressions, then one
    column per (key, arrow kind), then, when `overflow_keys` is not None, the JSON text of every key not
    flattened (NULL when there is none). Keys only ever travel as bound parameters."""
    where, named = scope.where()
    params = {"fk": named["fk"], "since": named["since"], "until": named["until"]}
    sql_where = where.replace(":fk", "%(fk)s").replace(":since", "%(since)s").replace(":until", "%(until)s")
    if scope.record_types:
        sql_where = sql_where.replace(":types", "%(types)s")
        params["types"] = list(scope.record_types)
    columns = [expr for _, expr in fixed]
    for i, (key, kind) in enumerate(keys):
        params[f"k{i}"] = key
        columns.append(value_sql(f"k{i}", kind))
    if overflow_keys is not None:
        params["flat_keys"] = [key for key, _ in keys]
        columns.append("CASE WHEN jsonb_typeof(data) = 'object' THEN "
                       "NULLIF(data - CAST(%(flat_keys)s AS text[]), '{}'::jsonb)::text END")
    if record_type is not None:
        sql_where += " AND record_type = %(rtype)s"
        params["rtype"] = record_type
    if day is not None:
        sql_where += (" AND created_at >= CAST(%(day)s AS timestamp) AT TIME ZONE 'UTC'"
                      " AND created_at < (CAST(%(day)s AS timestamp) + interval '1 day') AT TIME ZONE 'UTC'")
        params["day"] = day
    listed = ", ".join(f"{expr} AS c{i}" for i, expr in enumerate(columns)) or "1"
    sql = f"SELECT {listed} FROM records WHERE {sql_where} ORDER BY {order_by}"
    return sql, params


def copy_csv(session: Session, sql: str, params: dict, out) -> None:
    """Run `sql` and write its rows to the binary file `out` as CSV (COPY, rendered by PostgreSQL);
    the parameters are quoted by the driver."""
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cur:
        query = cur.mogrify(sql, params).decode()
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", out)


# --- schedules -------------------------------------------------------------------------------------

class ScheduleExists(Exception):
    pass


def create_schedule(session: Session, *, tenant_id: str, name: str, cron: str, spec: dict, target: str,
                    retention: int, next_run_at: dt.datetime, created_by: str | None) -> ExportSchedule:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    new_id = session.execute(pg_insert(ExportSchedule).values(
        id=uuid.uuid4(), tenant_id=tenant_id, name=name, cron=cron, spec=spec, target=target,
        retention=retention, next_run_at=next_run_at, created_by=created_by,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "name"]).returning(ExportSchedule.id)).scalar()
    if new_id is None:
        raise ScheduleExists(name)
    return session.get(ExportSchedule, new_id)


def list_schedules(session: Session, tenant_id: str | None) -> list[ExportSchedule]:
    stmt = select(ExportSchedule).order_by(ExportSchedule.tenant_id, ExportSchedule.name)
    if tenant_id is not None:
        stmt = stmt.where(ExportSchedule.tenant_id == tenant_id)
    return list(session.execute(stmt).scalars())


def get_schedule(session: Session, schedule_id, tenant_id: str | None = None) -> ExportSchedule | None:
    found = session.get(ExportSchedule, schedule_id) if schedule_id is not None else None
    if found is None or (tenant_id is not None and found.tenant_id != tenant_id):
        return None
    return found


def find_schedule(session: Session, tenant_id: str, name: str) -> ExportSchedule | None:
    return session.execute(select(ExportSchedule).where(ExportSchedule.tenant_id == tenant_id,
                                                        ExportSchedule.name == name)).scalar_one_or_none()


def due_schedules(session: Session, now: dt.datetime) -> list[ExportSchedule]:
    """Schedules whose next run is due, locked for this scheduler (another one skips them)."""
    return list(session.execute(select(ExportSchedule).where(
        ExportSchedule.paused.is_(False), ExportSchedule.next_run_at <= now)
        .order_by(ExportSchedule.next_run_at).with_for_update(skip_locked=True)).scalars())


def run_ended(session: Session, schedule_id, *, job_id, until: int, schemas: dict) -> None:
    """A run of the schedule completed: the next one starts after `until`, with these column types."""
    from sqlalchemy import update
    session.execute(update(ExportSchedule).where(ExportSchedule.id == schedule_id,
                                                 ExportSchedule.last_job_id == job_id)
                    .values(last_until_version=until, schemas=schemas))
