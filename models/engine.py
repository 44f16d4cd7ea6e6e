"""The sync engine's set-based operations: apply a chunk of records (stage, one merge, audit, versions in
commit order), read changes since a version (keyset), and the per-tenant version counter.

Versions: each tenant has one counter row. A writer stages its chunk first, then locks the counter row,
merges, and commits; the lock is held until commit, so versions are handed out in commit order and a
pull from any cursor never skips a change that commits late."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass, field
from typing import Callable, Sequence

import orjson
import psycopg2.errors
from sqlalchemy import text
from sqlalchemy.orm import Session

# Longest record key and record type, in bytes of UTF-8: both are in b-tree indexes, whose entries must
# fit a third of a page (PostgreSQL refuses a longer one with "index row requires … bytes"). Dialects
# reject a record over them (and one whose key or type holds a NUL or a lone surrogate) before a write.
MAX_KEY_LENGTH = 512
MAX_TYPE_LENGTH = 256


@dataclass
class Incoming:
    """One valid record, as the engine stores it. `position` is its index in the job's input."""
    position: int
    key: str
    record_type: str
    data: dict | None
    deleted: bool = False
    schema_version: str = ""
    geolocation: dict | None = None
    meta: dict = field(default_factory=dict)
    created_at: dt.datetime | str | None = None  # a str must already be a valid timestamp
    data_text: str | None = None  # `data` already serialised with sorted keys, when the caller has it
    staged: str | None = None  # stage_text(self), when the caller built it ahead (e.g. in a reading thread)


@dataclass
class ApplyResult:
    accepted: list[tuple[int, str, int]] = field(default_factory=list)    # (position, key, version)
    duplicates: list[tuple[int, str]] = field(default_factory=list)       # unchanged content
    conflicts: list[tuple[int, str, int]] = field(default_factory=list)   # (position, key, server version)
    max_version: int | None = None
    copied: bool = False  # the chunk was COPYed straight into records (apply_chunk's `direct`)


# hook(session, tenant_id, namespace, origin, job_id), run inside the apply transaction after the merge.
AfterApply = Callable[[Session, str, str, "str | None", object], None]


def _dumps(value) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def content_hash(rec: Incoming, data_text: str | None = None, meta_text: str | None = None) -> str:
    """Hash of everything a client can change; equal hashes mean a duplicate write. (The parts are
    hashed as one text joined by \\x1f: the same digest as feeding them one by one.)"""
    if data_text is None:
        data_text = "null" if rec.data is None else _dumps(rec.data)
    if meta_text is None:
        meta_text = _dumps(rec.meta or {})
    geolocation = "null" if rec.geolocation is None else _dumps(rec.geolocation)
    joined = "\x1f".join((rec.record_type, rec.schema_version, data_text, "1" if rec.deleted else "0",
                          geolocation, meta_text, ""))
    return hashlib.sha256(joined.encode()).hexdigest()


def ensure_counter(session: Session, tenant_id: str) -> None:
    session.execute(text("INSERT INTO sync_counters (tenant_id, value) VALUES (:t, 1) ON CONFLICT DO NOTHING"),
                    {"t": tenant_id})


def current_version(session: Session, tenant_id: str) -> int:
    value = session.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t"), {"t": tenant_id}).scalar()
    return int(value) if value is not None else 1


_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS fs_stage (
    ord int NOT NULL, position bigint NOT NULL, record_key text NOT NULL, record_type text NOT NULL,
    schema_version text NOT NULL, data jsonb, meta jsonb NOT NULL, content_hash text NOT NULL,
    deleted boolean NOT NULL, geolocation jsonb, created_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS fs_applied (
    record_key text NOT NULL, record_type text NOT NULL, version bigint NOT NULL, deleted boolean NOT NULL,
    data jsonb, meta jsonb, old_data jsonb, inserted boolean NOT NULL
) ON COMMIT DELETE ROWS;
"""


COPY_BLOCK = 1 << 18  # bytes handed to the driver at a time while COPYing a chunk
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """Escape one value for COPY's text format (JSON text from orjson only ever needs the backslashes)."""
    if value.isprintable() and "\\" not in value:  # no tab, newline or return either
        return value
    return value.translate(_COPY_ESCAPES)


def _copy_json(value: str) -> str:
    return value.replace("\\", "\\\\") if "\\" in value else value


def stage_text(rec: Incoming) -> str:
    """The record's row of fs_stage after its `ord`, as COPY text (hash included). A pipeline that
    prepares records in a thread of its own can build it there and set `rec.staged`, so the thread that
    writes to PostgreSQL only joins the rows. A meta object shared by records is serialised once."""
    created = rec.created_at
    if created is None:
        created = "\\N"
    elif not isinstance(created, str):
        created = created.isoformat()
    data_text = rec.data_text if rec.data_text is not None else (None if rec.data is None else _dumps(rec.data))
    meta = rec.meta or {}
    meta_text = _meta_texts.get(id(meta))
    if meta_text is None or meta_text[0] is not meta:
        meta_text = _meta_texts[id(meta)] = (meta, _dumps(meta))
    return "\t".join((
        str(rec.position), _copy_text(rec.key), _copy_text(rec.record_type), _copy_text(rec.schema_version),
        "\\N" if data_text is None else _copy_json(data_text),
        _copy_json(meta_text[1]), content_hash(rec, data_text, meta_text[1]),
        "t" if rec.deleted else "f",
        "\\N" if rec.geolocation is None else _copy_json(orjson.dumps(rec.geolocation).decode()),
        created,
    ))


class _MetaTexts(dict):
    """id(meta) -> (meta, its JSON text) for the last few meta objects seen (holding the object keeps
    its id from being reused while it is here)."""

    def __setitem__(self, key, value):
        if len(self) >= 64:
            self.clear()
        super().__setitem__(key, value)


_meta_texts = _MetaTexts()


def _copy_rows(records: list[Incoming]) -> bytes:
    """The chunk as COPY text for fs_stage."""
    rows = [f"{ord_}\t{rec.staged if rec.staged is not None else stage_text(rec)}"
            for ord_, rec in enumerate(records)]
    rows.append("")
    return "\n".join(rows).encode()


def _prepare_stage(session: Session, *, with_applied: bool) -> None:
    """The session's temp staging tables, ready for a chunk. Created once per connection; emptied here
    only when this transaction used them already (ON COMMIT DELETE ROWS empties them at every commit),
    and fs_applied only when hooks will read it."""
    conn = session.connection()
    info = conn.connection.info
    if not info.get("fieldsync_stage_tables"):  # see models.db: "pending" until the creation commits
        session.execute(text(_STAGE_DDL))
        info["fieldsync_stage_tables"] = "pending"
    transaction = id(conn.get_transaction())
    if info.get("fieldsync_staged_in") == transaction:
        session.execute(text("DELETE FROM fs_stage; DELETE FROM fs_applied"))
    elif with_applied:
        session.execute(text("DELETE FROM fs_applied"))
    info["fieldsync_staged_in"] = transaction


def _copy_stage(session: Session, source) -> None:
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cur:
        cur.copy_expert("COPY fs_stage FROM STDIN", source, size=COPY_BLOCK)


def _stage(session: Session, records: list[Incoming], *, with_applied: bool) -> None:
    """COPY the chunk into the session's temp staging table (kept out of the counter lock)."""
    _prepare_stage(session, with_applied=with_applied)
    _copy_stage(session, io.BytesIO(_copy_rows(records)))


STREAM_BLOCK = 1 << 16  # bytes of rows prepared per read while streaming a chunk into the staging table


class _StreamedRows:
    """A file for COPY FROM that takes each record from an iterator only when PostgreSQL asks for more:
    a block of rows is prepared (the records validated by the iterator, then rendered) while the server
    parses the block before it. `staged` holds the records in the order they were sent (their `ord`).
    An exception from the iterator ends the COPY and is kept in `error` (the driver would replace it with
    a cancelled query) for stage_stream to raise as it is."""

    def __init__(self, records):
        self.records = records
        self.staged: list[Incoming] = []
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        rows, length, staged = [], 0, self.staged
        limit = STREAM_BLOCK if size is None or size < 0 else min(size, STREAM_BLOCK)
        try:
            for rec in self.records:
                row = f"{len(staged)}\t{rec.staged if rec.staged is not None else stage_text(rec)}\n"
                staged.append(rec)
                rows.append(row)
                length += len(row)
                if length >= limit:
                    break
        except BaseException as exc:  # noqa: B902 - handed back to the caller unchanged
            self.error = exc
            return b""
        return "".join(rows).encode()


def stage_stream(session: Session, records, *, with_applied: bool) -> list[Incoming]:
    """COPY the records an iterator yields into the staging table as it yields them (the caller's work
    for the next block overlaps the server's parsing of this one), for apply_chunk(..., staged=True).
    Returns them, in staging order."""
    _prepare_stage(session, with_applied=with_applied)
    source = _StreamedRows(iter(records))
    _copy_stage(session, source)
    if source.error is not None:
        raise source.error
    return source.staged


_APPLIED_CTE = """, applied AS (
    INSERT INTO fs_applied (record_key, record_type, version, deleted, data, meta, old_data, inserted)
    SELECT up.record_key, up.record_type, up.version, up.deleted, up.data, up.meta, old.data, up.inserted
      FROM up LEFT JOIN old ON old.record_key = up.record_key
    RETURNING 1
)"""

# What only fs_applied (filled when there are hooks) reads of each merged row.
_APPLIED_RETURNING = ", r.data, r.meta"

# Under the counter lock no other writer can add or change this tenant's records (every write, a merge or
# a straight COPY, takes the lock first), so a key that `old` does not find is inserted without ON
# CONFLICT's arbiter probe, and a key it found is updated through the row it found (its ctid: no second
# index descent). A merge never races another write for the same key.
_MERGE = """
WITH {src}, old AS MATERIALIZED (
    -- LATERAL keeps this a primary-key lookup per staged row even while the table's statistics are stale
    SELECT r.ctid AS row_id, r.record_key, r.content_hash, r.version, r.origin, r.data, r.record_type, r.deleted
      FROM src s CROSS JOIN LATERAL (
           SELECT ctid, record_key, content_hash, version, origin, data, record_type, deleted FROM records
            WHERE tenant_id = :tenant AND namespace = :ns AND record_key = s.record_key
            LIMIT 1) r  -- LIMIT keeps the planner from flattening this into a join
), ins AS (
    INSERT INTO records AS r (tenant_id, namespace, record_key, record_type, schema_version, data, meta,
                              content_hash, deleted, geolocation, origin, version, created_at, updated_at,
                              created_by, updated_by)
    SELECT :tenant, :ns, s.record_key, s.record_type, s.schema_version, s.data, s.meta, s.content_hash,
           s.deleted, s.geolocation, :origin, :base + s.ord + 1, COALESCE(s.created_at, now()), now(),
           :actor, :actor
      FROM src s
     WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.record_key = s.record_key)
     -- in version order, so the heap follows the feed and a pull page reads a few adjacent pages
     ORDER BY s.ord
    RETURNING r.record_key, r.record_type, r.version, r.deleted, r.content_hash, true AS inserted{returning}
), upd AS (
    UPDATE records AS r
       SET record_type = s.record_type, schema_version = s.schema_version, data = s.data, meta = s.meta,
           content_hash = s.content_hash, deleted = s.deleted, geolocation = s.geolocation, origin = :origin,
           version = :base + s.ord + 1, updated_at = now(), updated_by = :actor
      FROM old JOIN src s ON s.record_key = old.record_key
     -- the ANY makes the rows to update a TID scan whatever the planner thinks of the join
     WHERE r.ctid = ANY(ARRAY(SELECT row_id FROM old)) AND r.ctid = old.row_id
       AND old.content_hash IS DISTINCT FROM s.content_hash
    RETURNING r.record_key, r.record_type, r.version, r.deleted, r.content_hash, false AS inserted{returning}
), up AS (
    SELECT * FROM ins UNION ALL SELECT * FROM upd
){applied}, audit AS (
    INSERT INTO record_changes (tenant_id, namespace, record_key, version, old_hash, new_hash, actor,
                                transmission, job_id, record_type, deleted, old_record_type, old_deleted)
    SELECT :tenant, :ns, up.record_key, up.version, old.content_hash, up.content_hash, :actor, :transmission,
           CAST(:job AS uuid), up.record_type, up.deleted, old.record_type, old.deleted
      FROM up LEFT JOIN old ON old.record_key = up.record_key
    RETURNING 1
), bump AS (
    UPDATE sync_counters SET value = :base + :n WHERE tenant_id = :tenant
    RETURNING 1
)
-- (data-modifying CTEs run once whether or not this SELECT reads them)
{answer}
"""
# What became of each staged record, in input order.
_ANSWER_ROWS = """SELECT s.position, s.record_key, up.version AS new_version, old.version AS old_version,
       old.origin AS old_origin,
       -- the overwritten server copy, kept only where it may be the loser of a conflict
       CASE WHEN old.version > :since THEN old.content_hash END AS old_hash,
       CASE WHEN old.version > :since THEN old.data::text END AS old_data_text
  FROM fs_stage s
  LEFT JOIN up ON up.record_key = s.record_key
  LEFT JOIN old ON old.record_key = s.record_key
 ORDER BY s.ord"""

# The last occurrence of a key within the chunk wins; a chunk whose keys are all distinct (known before it
# is sent) reads the staged rows as they are, without the sort.
_SRC_LAST = """src AS (
    SELECT DISTINCT ON (record_key) * FROM fs_stage ORDER BY record_key, ord DESC
)"""
_SRC_DISTINCT = "src AS NOT MATERIALIZED (SELECT * FROM fs_stage)"
# With distinct keys and no conflicts to find, the versions alone say what happened: each record's
# version is base + its ord + 1, and a record without one was a duplicate.
_ANSWER_VERSIONS = "SELECT up.version AS new_version FROM up"


# Creates the tenant's counter row when it has none and locks it either way, in one round trip. The merge
# runs as a statement of its own after this one, so its snapshot sees everything committed before the
# lock was granted (the merge's own CTE bumps the counter).
_LOCK_COUNTER = """
    INSERT INTO sync_counters AS c (tenant_id, value) VALUES (:t, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET value = c.value
    RETURNING value
"""


def apply_chunk(session: Session, *, tenant_id: str, namespace: str, records: list[Incoming],
                actor: str | None = None, origin: str | None = None, transmission: str | None = None,
                job_id=None, client_since: int | None = None, hooks: Sequence[AfterApply] = (),
                staged: bool = False, direct: bool = False) -> ApplyResult:
    """Upsert a chunk in one statement. The caller commits (that releases the counter lock).
    `client_since`: the version the client last pulled, when the dialect knows it; a record changed on
    the server after it by someone else is a conflict (last writer wins; the loser is kept).
    `hooks`: the namespace's after-apply hooks (models.dialects.after_apply_hooks). While they run, the
    temp table `fs_applied(record_key, record_type, version, deleted, data, meta, old_data, inserted)`
    holds the rows this chunk changed (so fan-out can be one INSERT … SELECT); it is filled only when
    there are hooks to read it. `staged`: `records` are in the staging table already (stage_stream, in
    this transaction).
    `direct`: for a bulk load of mostly new keys (see _copy_direct); the result's `copied` says whether
    the chunk went that way."""
    result = ApplyResult()
    if not records:
        return result
    distinct = len({rec.key for rec in records}) == len(records)
    versions_only = distinct and client_since is None
    if direct and versions_only and not hooks and not staged:
        copied = _copy_direct(session, tenant_id, namespace, records, actor, origin, transmission, job_id)
        if copied is not None:
            return copied
        _stage(session, records, with_applied=False)  # a key exists: the merge below (the lock is held)
    elif not staged:
        _stage(session, records, with_applied=bool(hooks))
    base = session.execute(text(_LOCK_COUNTER), {"t": tenant_id}).scalar_one()
    merge = (_MERGE.replace("{applied}", _APPLIED_CTE if hooks else "")
             .replace("{returning}", _APPLIED_RETURNING if hooks else "")
             .replace("{src}", _SRC_DISTINCT if distinct else _SRC_LAST)
             .replace("{answer}", _ANSWER_VERSIONS if versions_only else _ANSWER_ROWS))
    rows = session.execute(text(merge), {
        "tenant": tenant_id, "ns": namespace, "origin": origin, "actor": actor, "base": base,
        "transmission": transmission, "job": None if job_id is None else str(job_id),
        "since": client_since if client_since is not None else 2 ** 62, "n": len(records),
    }).all()
    if versions_only:
        return _versions_result(session, records, base, sorted(row.new_version for row in rows), tenant_id,
                                namespace, origin, job_id, hooks)
    winners: dict[str, int] = {}
    for row in rows:
        if row.new_version is not None:
            winners[row.record_key] = row.new_version
    seen_winner: set[str] = set()
    conflicts_to_keep = []
    # Rows are in input order; only the last occurrence of a key carries the new version.
    last_position = {}
    for row in rows:
        last_position[row.record_key] = row.position
    for row in rows:
        key = row.record_key
        if key in winners and last_position[key] == row.position and key not in seen_winner:
            seen_winner.add(key)
            result.accepted.append((row.position, key, winners[key]))
            if (client_since is not None and row.old_version is not None and row.old_version > client_since
                    and row.old_origin != origin):
                result.conflicts.append((row.position, key, row.old_version))
                conflicts_to_keep.append((key, row.old_version, row.old_hash, row.old_data_text))
        elif key in winners:
            result.accepted.append((row.position, key, winners[key]))  # superseded within the chunk
        else:
            result.duplicates.append((row.position, key))
    top = max(winners.values(), default=None)
    if top is not None:
        result.max_version = top
    if conflicts_to_keep:
        _keep_conflicts(session, tenant_id, namespace, conflicts_to_keep, client_since, job_id, origin)
    if winners:
        for hook in hooks:
            hook(session, tenant_id, namespace, origin, job_id)
    return result


# The counter locked (as _LOCK_COUNTER), with the transaction's time as text.
_LOCK_COUNTER_NOW = _LOCK_COUNTER.replace("RETURNING value", "RETURNING value, now()::text AS now")


_COPY_RECORDS = ("COPY records (version, record_key, record_type, schema_version, data, meta, content_hash, deleted, "
                 "geolocation, created_at, tenant_id, namespace, origin, updated_at, created_by, updated_by) FROM STDIN")
_COPY_CHANGES = ("COPY record_changes (version, record_key, record_type, new_hash, deleted, tenant_id, namespace, "
                 "actor, transmission, job_id) FROM STDIN")


def _copy_direct(session, tenant_id, namespace, records, actor, origin, transmission, job_id) -> ApplyResult | None:
    """Apply a chunk of distinct keys none of which the namespace has yet by COPYing it straight into
    `records` and `record_changes` (no staging table, no merge); None, with the counter locked, when a
    key exists (the caller merges). The records' primary key decides: a COPY that meets a stored key is
    undone to a savepoint taken after the counter lock (so the lock is kept)."""
    base, now = session.execute(text(_LOCK_COUNTER_NOW), {"t": tenant_id}).one()

    def copy_text(value) -> str:
        return "\\N" if value is None else _copy_text(str(value))
    tail = "\t".join((copy_text(tenant_id), copy_text(namespace), copy_text(origin), now, copy_text(actor),
                      copy_text(actor)))
    change_tail = "\t".join((copy_text(tenant_id), copy_text(namespace), copy_text(actor), copy_text(transmission),
                             copy_text(job_id)))
    rows, changes = [], []
    for ord_, rec in enumerate(records):
        # the staged row: position, key, type, schema version, data, meta, hash, deleted, geolocation, created
        fields = (rec.staged if rec.staged is not None else stage_text(rec)).split("\t")
        if fields[9] == "\\N":
            fields[9] = now  # as the merge's COALESCE(created_at, now())
        version = str(base + ord_ + 1)
        fields[0] = version
        rows.append("\t".join(fields) + "\t" + tail)
        changes.append("\t".join((version, fields[1], fields[2], fields[6], fields[7], change_tail)))
    rows.append("")
    changes.append("")
    with session.connection().connection.dbapi_connection.cursor() as cur:
        cur.execute("SAVEPOINT fs_copy")
        try:
            cur.copy_expert(_COPY_RECORDS, io.BytesIO("\n".join(rows).encode()), size=COPY_BLOCK)
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT fs_copy")
            return None
        cur.execute("RELEASE SAVEPOINT fs_copy")
        cur.copy_expert(_COPY_CHANGES, io.BytesIO("\n".join(changes).encode()), size=COPY_BLOCK)
    session.execute(text("UPDATE sync_counters SET value = :v WHERE tenant_id = :t"),
                    {"v": base + len(records), "t": tenant_id})
    result = ApplyResult(copied=True)
    result.accepted = [(rec.position, rec.key, base + ord_ + 1) for ord_, rec in enumerate(records)]
    result.max_version = base + len(records)
    return result


def _versions_result(session, records, base, versions, tenant_id, namespace, origin, job_id, hooks) -> ApplyResult:
    """The result of a chunk of distinct keys, from the versions given out (record `ord` got base + ord + 1)."""
    result = ApplyResult()
    changed = set()
    for version in versions:
        ord_ = version - base - 1
        changed.add(ord_)
        result.accepted.append((records[ord_].position, records[ord_].key, version))
    result.duplicates = [(rec.position, rec.key) for ord_, rec in enumerate(records) if ord_ not in changed]
    if versions:
        result.max_version = versions[-1]
        for hook in hooks:
            hook(session, tenant_id, namespace, origin, job_id)
    return result


def _keep_conflicts(session, tenant_id, namespace, conflicts, client_since, job_id, origin) -> None:
    """Keep the overwritten server copy (the loser of last-writer-wins) for ops."""
    session.execute(text("""
        INSERT INTO record_conflicts (tenant_id, namespace, record_key, server_version, client_since,
                                      losing_hash, losing_data, winner_origin, job_id)
        SELECT :tenant, :ns, c.key, c.server_version, :since, c.hash, CAST(c.data AS jsonb), :origin,
               CAST(:job AS uuid)
          FROM unnest(CAST(:keys AS text[]), CAST(:versions AS bigint[]), CAST(:hashes AS text[]),
                      CAST(:datas AS text[])) AS c(key, server_version, hash, data)
    """), {"tenant": tenant_id, "ns": namespace, "since": client_since, "origin": origin,
           "job": None if job_id is None else str(job_id), "keys": [c[0] for c in conflicts],
           "versions": [c[1] for c in conflicts], "hashes": [c[2] for c in conflicts],
           "datas": [c[3] for c in conflicts]})


def feed_key(tenant_id: str, namespace: str) -> str:
    """The value of records.feed_key: filter feeds on it so the feed indexes are used."""
    return f"{tenant_id}:{namespace}"


_FEED_COLUMNS = """record_key, record_type, schema_version, data::text AS data_text, meta, deleted,
       geolocation::text AS geolocation_text, version, created_at, updated_at, origin"""


def changes_since(session: Session, *, tenant_id: str, namespace: str, since: int, limit: int,
                  record_types: list[str] | None = None, columns: str = _FEED_COLUMNS):
    """Keyset page of the change feed (tombstones included), oldest version first. `data` comes back as
    JSON text so a dialect can splice it into its response without parsing; `columns` lets a dialect
    have PostgreSQL render each row in its own wire shape (see models.synkronus.store)."""
    return feed_page(session, tenant_id=tenant_id, namespace=namespace, since=since, limit=limit,
                     record_types=record_types, columns=columns)[1]


# A feed page must be an index scan of ix_records_feed (or ix_records_type_feed for one type) in version
# order, stopping at the limit. Right after a bulk load, before ANALYZE, the planner can believe a
# tenant's feed is a few rows and pick a bitmap scan of the whole feed and a sort instead; with these off
# (for the page's transaction only) the plan no longer depends on the statistics.
_FEED_PLAN = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; "
# Feed columns may render timestamps from their text, which follows the DateStyle: pin it for the page.
_FEED_DATESTYLE = "SET LOCAL DateStyle = 'ISO, MDY'; "


def feed_page(session: Session, *, tenant_id: str, namespace: str, since: int, limit: int,
              record_types: list[str] | None = None, columns: str = _FEED_COLUMNS,
              proof: tuple[str, dict] | None = None) -> tuple[int, list, bool]:
    """(counter, rows, proven): the tenant's version counter and a keyset page of the feed, read in one
    statement (one snapshot, one round trip). Every version at or below the counter is committed and
    visible in that snapshot (versions follow commit order), so the counter is a safe high-water mark.
    `proof`: (a boolean SQL expression, its parameters) evaluated in the same statement, its value given as
    `proven` (True when there is none): a caller that has not yet checked who asks (web.auth's
    claimed principal) proves it here instead of in a round trip of its own, and discards the page if not."""
    params = {"t": tenant_id, "fk": feed_key(tenant_id, namespace), "since": since, "limit": limit}
    proof_sql = "true"
    if proof is not None:
        proof_sql, proof_params = proof
        params.update(proof_params)
    type_filter, plan = "", _FEED_PLAN
    if record_types:
        type_filter = "AND record_type = ANY(:types)"
        params["types"] = list(record_types)
        if len(record_types) > 1:
            plan = ""  # several types: merging their index ranges needs a sort, let the planner choose
    rows = session.execute(text(f"""{_FEED_DATESTYLE}{plan}
        SELECT c.counter, c.proven, f.*
          FROM (SELECT COALESCE((SELECT value FROM sync_counters WHERE tenant_id = :t), 1) AS counter,
                       {proof_sql} AS proven) c
          LEFT JOIN LATERAL (
              SELECT {columns} FROM records
               WHERE feed_key = :fk AND version > :since {type_filter}
               ORDER BY version LIMIT :limit) f ON true
         ORDER BY f.version
    """), params).all()
    counter = int(rows[0].counter)
    return counter, [row for row in rows if row.version is not None], bool(rows[0].proven)


def get_record(session: Session, *, tenant_id: str, namespace: str, key: str):
    return session.execute(text(f"SELECT {_FEED_COLUMNS} FROM records WHERE tenant_id = :t AND namespace = :ns "
                                "AND record_key = :k"), {"t": tenant_id, "ns": namespace, "k": key}).first()
