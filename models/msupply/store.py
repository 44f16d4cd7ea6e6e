"""The SQL that serves mSupply: routing, queue fan-out and dumps, queue reads and acks, pushed SyncIDs,
sites and their credentials (tables in models/msupply/tables.py).

The queue is kept by set-based SQL: `fan_out` runs inside the engine's apply transaction and upserts
the changed rows of `fs_applied` into the queues of every site the change concerns; `dump_batch` fills
one site's queue from the records table with INSERT … SELECT. An entry is unique per (site, record), so
a newer change replaces an older queued one (with a new SyncID, at the tail of the queue) and a delete
replaces whatever was queued for that record."""
from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import lru_cache

import bcrypt
import orjson
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.engine import Incoming, apply_chunk
from models.msupply import INITIAL_DUMP, NAMESPACE, ORIGIN_PREFIX, PUSH
from models.msupply.tables import Site
from models.users import ensure_tenant, hash_password


# --- routing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """Which sites a record type goes to. mode "all": every site of the tenant (master data);
    "store": the sites whose store is the record's store (`store_field` in the data, else the StoreID
    it was pushed with); "self": the site whose store *is* this record; "none": never sent.
    `name_field`, when set, also sends the record to the site whose store's name is that field (a
    transfer reaches the receiving store)."""
    mode: str = "store"
    store_field: str = "store_ID"
    name_field: str = ""


@dataclass(frozen=True)
class SubsetFilter:
    """Mobile-subset filter for a record type: only rows joined to the site's store through
    `join_type` (join_type.join_key = this record's id and join_type.join_store = the site's store)."""
    join_type: str
    join_key: str
    join_store: str = "store_ID"


MASTER = Route(mode="all")
DEFAULT_ROUTES: dict[str, Route] = {
    "item": MASTER, "item_category": MASTER, "item_department": MASTER, "item_direction": MASTER,
    "name": MASTER, "name_tag": MASTER, "name_tag_join": MASTER, "name_note": MASTER,
    "list_master": MASTER, "list_master_line": MASTER, "list_master_name_join": MASTER,
    "currency": MASTER, "options": MASTER, "abbreviation": MASTER, "clinician": MASTER,
    "nameInsuranceJoin": MASTER, "insuranceProvider": MASTER, "medicine_administrator": MASTER,
    "user": MASTER, "report": MASTER, "vaccine_vial_monitor_status": MASTER,
    "store": Route(mode="self", store_field="ID"),
    "transact": Route(store_field="store_ID", name_field="name_ID"),
    "requisition": Route(store_field="store_ID", name_field="name_ID"),
}
MOBILE_TYPES = (
    "store", "pref", "item", "item_line", "item_category", "item_department", "item_direction", "name",
    "name_store_join", "name_note", "name_tag", "name_tag_join", "nameInsuranceJoin", "insuranceProvider",
    "transact", "trans_line", "requisition", "requisition_line", "Stock_take", "Stock_take_lines",
    "list_master", "list_master_line", "list_master_name_join", "number", "user", "clinician",
    "currency", "options", "abbreviation", "medicine_administrator", "Location", "location_movement",
    "sensor", "temperature_log", "temperature_breach", "vaccine_vial_monitor_status",
)
MOBILE_FILTERS: dict[str, SubsetFilter] = {
    "name": SubsetFilter(join_type="name_store_join", join_key="name_ID"),
}


@dataclass(frozen=True)
class Routing:
    routes: dict
    default: Route = Route()
    mobile_types: tuple = MOBILE_TYPES
    mobile_filters: dict = None

    def params(self) -> dict:
        names = sorted(self.routes)
        return {"rt_types": names, "rt_modes": [self.routes[n].mode for n in names],
                "rt_store": [self.routes[n].store_field for n in names],
                "rt_name": [self.routes[n].name_field for n in names],
                "df_mode": self.default.mode, "df_store": self.default.store_field,
                "df_name": self.default.name_field}


DEFAULT_ROUTING = Routing(routes=DEFAULT_ROUTES, mobile_filters=MOBILE_FILTERS)


def load_routing(spec: dict | None) -> Routing:
    """Build a Routing from JSON config ({"routes": {type: {mode, store_field, name_field}},
    "mobile_types": [...], "mobile_filters": {type: {join_type, join_key, join_store}}}); missing
    parts keep the defaults."""
    if not spec:
        return DEFAULT_ROUTING
    routes = dict(DEFAULT_ROUTES)
    routes.update({k: Route(**v) for k, v in (spec.get("routes") or {}).items()})
    filters = dict(MOBILE_FILTERS)
    filters.update({k: SubsetFilter(**v) for k, v in (spec.get("mobile_filters") or {}).items()})
    return Routing(routes=routes, default=Route(**spec["default"]) if spec.get("default") else Route(),
                   mobile_types=tuple(spec.get("mobile_types") or MOBILE_TYPES), mobile_filters=filters)


@lru_cache(maxsize=8)
def routing_for(path: str | None) -> Routing:
    """The routing of a deployment: the JSON file at `path` (MSUPPLY_ROUTING_FILE), or the defaults."""
    if not path:
        return DEFAULT_ROUTING
    with open(path, encoding="utf-8") as fh:
        return load_routing(orjson.loads(fh.read()))


_ROUTES_CTE = """
routes AS (
    SELECT * FROM unnest(CAST(:rt_types AS text[]), CAST(:rt_modes AS text[]), CAST(:rt_store AS text[]),
                         CAST(:rt_name AS text[])) AS rt(record_type, mode, store_field, name_field)
)"""

# The site a row concerns: s is msupply_sites, c has mode/store/name_ref (see the CTEs below).
_SITE_MATCH = """(c.mode = 'all'
         OR (c.mode IN ('store', 'self') AND c.store_id <> '' AND s.store_id = c.store_id)
         OR (c.name_ref <> '' AND s.name_id = c.name_ref))"""


def _route_cols(src: str, data: str, meta: str, old_data: str = "NULL::jsonb") -> str:
    """Columns mode / store_id / name_ref of a record row `src`, under the routing table."""
    return f"""COALESCE(rt.mode, :df_mode) AS mode,
               COALESCE(CASE WHEN COALESCE(rt.mode, :df_mode) = 'self'
                             THEN substr({src}.record_key, length({src}.record_type) + 2) END,
                        NULLIF({data} ->> COALESCE(rt.store_field, :df_store), ''),
                        NULLIF({meta} ->> 'store_id', ''),
                        NULLIF({old_data} ->> COALESCE(rt.store_field, :df_store), ''), '') AS store_id,
               COALESCE(NULLIF({data} ->> NULLIF(COALESCE(rt.name_field, :df_name), ''), ''),
                        NULLIF({old_data} ->> NULLIF(COALESCE(rt.name_field, :df_name), ''), ''),
                        '') AS name_ref"""


_UPSERT_TAIL = """
ON CONFLICT (tenant_id, site_id, record_key) DO UPDATE
   SET id = nextval('msupply_queue_id_seq'), sync_id = EXCLUDED.sync_id, sync_type = EXCLUDED.sync_type,
       record_type = EXCLUDED.record_type, store_id = EXCLUDED.store_id, version = EXCLUDED.version,
       merge_keep = EXCLUDED.merge_keep, merge_delete = EXCLUDED.merge_delete
 WHERE msupply_queue.version < EXCLUDED.version"""

_FAN_OUT = f"""
WITH {_ROUTES_CTE},
c AS (
    SELECT a.record_key, a.record_type, a.version, a.deleted, a.meta, a.inserted,
           {_route_cols("a", "a.data", "a.meta", "a.old_data")}
      FROM fs_applied a LEFT JOIN routes rt ON rt.record_type = a.record_type
)
INSERT INTO msupply_queue (tenant_id, site_id, id, sync_id, record_key, record_type, record_id, sync_type,
                           store_id, version, merge_keep, merge_delete)
SELECT s.tenant_id, s.site_id, nextval('msupply_queue_id_seq'),
       md5(s.site_id || ':' || c.record_key || ':' || c.version), c.record_key, c.record_type,
       substr(c.record_key, length(c.record_type) + 2),
       CASE WHEN c.meta ->> 'sync_type' = 'M' THEN 'M' WHEN c.deleted THEN 'D'
            WHEN c.inserted THEN 'I' ELSE 'U' END,
       c.store_id, c.version, COALESCE(c.meta ->> 'merge_keep', ''), COALESCE(c.meta ->> 'merge_delete', '')
  FROM c JOIN msupply_sites s ON s.tenant_id = :tenant
 WHERE c.mode <> 'none' AND :origin IS DISTINCT FROM ('{ORIGIN_PREFIX}' || s.site_id)
   AND {_SITE_MATCH}
 ORDER BY c.version
{_UPSERT_TAIL}
"""


def after_apply(settings) -> dict:
    """The engine's after-apply hooks for this dialect: every change to an mSupply record is fanned out
    to the site queues it concerns, inside the apply transaction (under the deployment's routing)."""
    routing = routing_for(settings.option("msupply", "routing_file"))

    def fan_out_hook(session, tenant_id, namespace, origin, job_id) -> None:
        fan_out(session, tenant_id, routing, origin)

    return {NAMESPACE: [fan_out_hook]}


def fan_out(session: Session, tenant_id: str, routing: Routing = DEFAULT_ROUTING, origin: str | None = None) -> int:
    """Queue the rows of `fs_applied` (this apply's changes) for every site they concern. One
    statement; runs inside the apply transaction, under the tenant's counter lock, so two writers of
    the same tenant never race on a queue entry."""
    return session.execute(text(_FAN_OUT), {"tenant": tenant_id, "origin": origin,
                                            **routing.params()}).rowcount


def site_origin(site_id: int) -> str:
    return f"{ORIGIN_PREFIX}{site_id}"


# --- initial dump ------------------------------------------------------------------------------

_DUMP = f"""
WITH {_ROUTES_CTE},
site AS (SELECT * FROM msupply_sites WHERE tenant_id = :tenant AND site_id = :site),
c AS (
    SELECT r.record_key, r.record_type, r.version, r.data,
           {_route_cols("r", "r.data", "r.meta")}
      FROM records r LEFT JOIN routes rt ON rt.record_type = r.record_type
     WHERE r.tenant_id = :tenant AND r.namespace = '{NAMESPACE}' AND r.version > :after AND r.version <= :upto
       AND NOT r.deleted {{type_filter}}
)
INSERT INTO msupply_queue (tenant_id, site_id, id, sync_id, record_key, record_type, record_id, sync_type,
                           store_id, version, merge_keep, merge_delete)
SELECT s.tenant_id, s.site_id, nextval('msupply_queue_id_seq'),
       md5(s.site_id || ':' || c.record_key || ':' || c.version), c.record_key, c.record_type,
       substr(c.record_key, length(c.record_type) + 2), 'I', c.store_id, c.version, '', ''
  FROM c CROSS JOIN site s
 WHERE c.mode <> 'none' AND {_SITE_MATCH} {{subset_filter}}
 ORDER BY c.version
{_UPSERT_TAIL}
"""


def _subset_sql(routing: Routing) -> tuple[str, dict]:
    """The mobile subset: a type whitelist plus per-type join filters (set-based EXISTS)."""
    parts, params = [], {}
    for i, (rtype, flt) in enumerate(sorted((routing.mobile_filters or {}).items())):
        params.update({f"mf_type{i}": rtype, f"mf_join{i}": flt.join_type, f"mf_key{i}": flt.join_key,
                       f"mf_store{i}": flt.join_store})
        parts.append(f"""(c.record_type <> :mf_type{i} OR EXISTS (
            SELECT 1 FROM records j WHERE j.tenant_id = s.tenant_id AND j.namespace = '{NAMESPACE}'
               AND j.record_type = :mf_join{i} AND NOT j.deleted
               AND j.data ->> :mf_store{i} = s.store_id
               AND j.data ->> :mf_key{i} = substr(c.record_key, length(c.record_type) + 2)))""")
    return "".join(" AND " + p for p in parts), params


def dump_batch(session: Session, *, tenant_id: str, site_id: int, after: int, upto: int, batch: int,
               full: bool, routing: Routing = DEFAULT_ROUTING) -> tuple[int, int | None]:
    """Queue the site's share of the next `batch` record versions after `after` (up to `upto`).
    Returns (rows queued, last version scanned or None when nothing is left)."""
    last = session.execute(text(f"""
        SELECT max(version) FROM (SELECT version FROM records
         WHERE tenant_id = :t AND namespace = '{NAMESPACE}' AND version > :after AND version <= :upto
         ORDER BY version LIMIT :batch) v"""), {"t": tenant_id, "after": after, "upto": upto,
                                                  "batch": batch}).scalar()
    if last is None:
        return 0, None
    params = {"tenant": tenant_id, "site": site_id, "after": after, "upto": last, **routing.params()}
    type_filter, subset = "", ""
    if not full:
        type_filter = "AND r.record_type = ANY(CAST(:mobile_types AS text[]))"
        params["mobile_types"] = list(routing.mobile_types)
        subset, extra = _subset_sql(routing)
        params.update(extra)
    sql = _DUMP.replace("{type_filter}", type_filter).replace("{subset_filter}", subset)
    # the batch is sorted by version before it gets queue ids; keep that sort in memory
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    return session.execute(text(sql), params).rowcount, last


def refresh_stats(session: Session) -> None:
    """After a dump the queue has grown by a lot: refresh its planner statistics, and those of the
    records table if it was never analysed (a fresh bulk load), so queue reads use their indexes."""
    session.execute(text("ANALYZE msupply_queue"))
    never = session.execute(text("SELECT reltuples < 0 FROM pg_class WHERE oid = 'records'::regclass")).scalar()
    if never:
        session.execute(text("ANALYZE records"))


def clear_queue(session: Session, tenant_id: str, site_id: int) -> int:
    return session.execute(text("DELETE FROM msupply_queue WHERE tenant_id = :t AND site_id = :s"),
                           {"t": tenant_id, "s": site_id}).rowcount


# --- queue reads and acks -----------------------------------------------------------------------

@dataclass(frozen=True)
class SiteProof:
    """A site row the caller authenticated against without reading it first (web.msupply.auth's
    claimed_site): a statement given one acts only if the row of (tenant_id, site_id) still has this
    name, stored hash and bound device, in the statement's own snapshot, and says whether it did."""
    tenant_id: str
    site_id: int
    name: str
    password_hash: str
    hardware_id: str


_PROOF = """EXISTS (SELECT 1 FROM msupply_sites WHERE tenant_id = {t} AND site_id = {s} AND name = {n}
                           AND password_hash = {h} AND hardware_id = {hw})"""


def _proof(proof: SiteProof | None, style: str) -> tuple[str, dict]:
    """(SQL boolean, its parameters) for `proof` ("true" without one), in the driver's parameter style
    ("pyformat") or SQLAlchemy's ("named")."""
    if proof is None:
        return "true", {}
    names = {k: (f"%(pf_{k})s" if style == "pyformat" else f":pf_{k}") for k in ("t", "s", "n", "h", "hw")}
    return _PROOF.format(**names), {"pf_t": proof.tenant_id, "pf_s": proof.site_id, "pf_n": proof.name,
                                    "pf_h": proof.password_hash, "pf_hw": proof.hardware_id}


def queue_count(session: Session, tenant_id: str, site_id: int) -> int:
    return session.execute(text("SELECT count(*) FROM msupply_queue WHERE tenant_id = :t AND site_id = :s"),
                           {"t": tenant_id, "s": site_id}).scalar_one()


def queue_head(session: Session, tenant_id: str, site_id: int, *, limit: int, sync_id: str | None = None):
    """The oldest `limit` entries (or the one with `sync_id`) with the record's current data as JSON
    text. Not destructive: entries stay until acknowledged."""
    where = "AND q.sync_id = :sync_id" if sync_id is not None else ""
    # LATERAL keeps the record lookup a primary-key probe per entry even while statistics are stale
    # (right after a bulk load or a big dump).
    return session.execute(text(f"""
        SELECT q.sync_id, q.record_type, q.record_id, q.sync_type, q.store_id, q.merge_keep, q.merge_delete,
               r.data_text
          FROM (SELECT * FROM msupply_queue q WHERE q.tenant_id = :t AND q.site_id = :s {where}
                 ORDER BY q.id LIMIT :limit) q
          LEFT JOIN LATERAL (SELECT data::text AS data_text FROM records
                              WHERE tenant_id = :t AND namespace = '{NAMESPACE}' AND record_key = q.record_key
                              LIMIT 1) r  -- LIMIT keeps the planner from flattening this into a hash join
            ON true                       -- that reads every record of the tenant
         ORDER BY q.id"""), {"t": tenant_id, "s": site_id, "limit": limit, "sync_id": sync_id}).all()


_EMPTY_DATA = orjson.Fragment(b"{}")


def queue_page_json(session: Session, tenant_id: str, site_id: int, *, limit: int, sync_id: str | None = None,
                    key_fields: dict[str, int] | None = None, proof: SiteProof | None = None) -> bytes | None:
    """`queue_head` as the v2/v3 wire page: a JSON array of {SyncID, RecordType, RecordID, SyncType,
    StoreID, KeyFieldID, mergeIDtokeep, mergeIDtodelete, data}, every key present ("" where a value does
    not apply), a merge naming the kept record, `data` the record's stored JSON for an insert or update
    and {} otherwise. `key_fields`: KeyFieldID by record type, where it is not 1. With `proof`, the page
    is read only if the site row proves current (None when it does not).

    The rows are read on the session's DBAPI cursor (plain tuples) and written by orjson, each record's
    `data` spliced in as PostgreSQL wrote it (jsonb's text, never parsed here): cheaper for the database
    than building the page there with json_build_object and string_agg, and for the process than rows
    through the ORM's result layer."""
    where = "AND q.sync_id = %(sync_id)s" if sync_id is not None else ""
    proof_sql, params = _proof(proof, "pyformat")
    params.update({"t": tenant_id, "s": site_id, "limit": limit, "sync_id": sync_id})
    fields = key_fields or {}
    raw = session.connection().connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(f"""
            SELECT p.proven, x.sync_id, x.record_type, x.record_id, x.sync_type, x.store_id, x.merge_keep,
                   x.merge_delete, x.data_text
              FROM (SELECT {proof_sql} AS proven) p
              LEFT JOIN LATERAL (
                  SELECT q.id, q.sync_id, q.record_type, q.record_id, q.sync_type, q.store_id, q.merge_keep,
                         q.merge_delete, r.data_text
                    FROM (SELECT * FROM msupply_queue q WHERE q.tenant_id = %(t)s AND q.site_id = %(s)s {where}
                           ORDER BY q.id LIMIT %(limit)s) q
                    LEFT JOIN LATERAL (SELECT data::text AS data_text FROM records
                                        WHERE tenant_id = %(t)s AND namespace = '{NAMESPACE}'
                                          AND record_key = q.record_key
                                        LIMIT 1) r ON true  -- a primary-key probe per entry (see queue_head)
              ) x ON p.proven
             ORDER BY x.id""", params)
        rows = cur.fetchall()
    if not rows[0][0]:
        return None
    fragment = orjson.Fragment
    return orjson.dumps([
        {"SyncID": sid, "RecordType": rtype, "RecordID": keep if stype == "M" else rid, "SyncType": stype,
         "StoreID": store or "", "KeyFieldID": fields.get(rtype, 1), "mergeIDtokeep": keep or "",
         "mergeIDtodelete": drop or "",
         "data": fragment(data) if data is not None and stype in ("I", "U") else _EMPTY_DATA}
        for _, sid, rtype, rid, stype, store, keep, drop, data in rows if sid is not None])


def acknowledge(session: Session, tenant_id: str, site_id: int, sync_ids: list[str],
                proof: SiteProof | None = None) -> tuple[int, int] | None:
    """Remove the acknowledged entries (unknown or already-acknowledged ids are ignored) and read the
    version the site has now received everything below (see `received_up_to`).
    Returns (entries removed, received up to), or None when `proof` is given and the site row does not
    prove current (then nothing is removed).

    A client acknowledges what it just pulled, the head of its queue: the entries are found by walking
    that many entries of the head in queue order (the primary key, adjacent pages) rather than by one
    SyncID index probe each, and the new head is read in the same statement, past the removed rows
    (still in its snapshot). Any id not found there (an acknowledgement out of order, a resend) is then
    looked up by its SyncID, as before; at worst (stale statistics) that scans the site's own entries
    once, never a join that can turn quadratic."""
    ids = list(dict.fromkeys(sync_ids))
    proof_sql, params = _proof(proof, "named")
    if not ids:
        if proof is not None and not session.execute(text(f"SELECT {proof_sql}"), params).scalar():
            return None
        return 0, received_up_to(session, tenant_id, site_id)
    params.update({"t": tenant_id, "s": site_id, "ids": ids, "window": len(ids)})
    proven, gone, received = session.execute(text(f"""
        WITH proof AS MATERIALIZED (SELECT {proof_sql} AS proven), head AS MATERIALIZED (
            SELECT id, sync_id FROM msupply_queue
             WHERE tenant_id = :t AND site_id = :s AND (SELECT proven FROM proof) ORDER BY id LIMIT :window
        ), hit AS (
            SELECT head.id FROM head JOIN unnest(CAST(:ids AS text[])) AS a(sync_id) ON a.sync_id = head.sync_id
        ), gone AS (
            DELETE FROM msupply_queue q USING hit WHERE q.tenant_id = :t AND q.site_id = :s AND q.id = hit.id
            RETURNING q.id
        )
        SELECT (SELECT proven FROM proof), (SELECT count(*) FROM gone),
               COALESCE((SELECT version - 1 FROM msupply_queue
                          WHERE tenant_id = :t AND site_id = :s AND id NOT IN (SELECT id FROM gone)
                          ORDER BY id LIMIT 1),
                        (SELECT value FROM sync_counters WHERE tenant_id = :t), 0)
    """), params).one()
    if not proven:
        return None
    if gone == len(ids):
        return gone, int(received)
    # what is left of the list (the head's entries are gone already) is found by SyncID
    removed = gone + session.execute(text("""
        DELETE FROM msupply_queue WHERE tenant_id = :t AND site_id = :s AND sync_id = ANY(CAST(:ids AS text[]))
    """), {"t": tenant_id, "s": site_id, "ids": ids}).rowcount
    return removed, received_up_to(session, tenant_id, site_id)


def received_up_to(session: Session, tenant_id: str, site_id: int) -> int:
    """The version a site has received everything below, for its pull lag: just below the head of its
    queue, or the tenant's counter when the queue is empty. One primary-key probe and one counter read."""
    return session.execute(text("""
        SELECT COALESCE((SELECT version - 1 FROM msupply_queue WHERE tenant_id = :t AND site_id = :s
                          ORDER BY id LIMIT 1),
                        (SELECT value FROM sync_counters WHERE tenant_id = :t), 0)"""),
                           {"t": tenant_id, "s": site_id}).scalar_one()


# --- pushed SyncIDs ------------------------------------------------------------------------------

def seen_sync_ids(session: Session, tenant_id: str, site_id: int, sync_ids: list[str], job_id) -> set[str]:
    """SyncIDs of this list that an earlier push job of the site already applied. One primary-key probe
    per id (LATERAL … LIMIT 1): with `= ANY(ids)` a table that has grown since its last ANALYZE (every
    push adds its SyncIDs) was read as all of the site's rows filtered by the list, a scan per push that
    grows with everything the site ever pushed."""
    if not sync_ids:
        return set()
    return set(session.execute(text("""
        SELECT x.sync_id FROM unnest(CAST(:ids AS text[])) AS i(sync_id)
         CROSS JOIN LATERAL (SELECT sync_id, job_id FROM msupply_sync_ids
                              WHERE tenant_id = :t AND site_id = :s AND sync_id = i.sync_id LIMIT 1) x
         WHERE x.job_id <> CAST(:job AS uuid)
    """), {"t": tenant_id, "s": site_id, "ids": list(dict.fromkeys(sync_ids)), "job": str(job_id)}).scalars())


def claim_sync_ids(session: Session, tenant_id: str, site_id: int, sync_ids: list[str], job_id) -> set[str]:
    """Remember these SyncIDs as pushed by this job (in the caller's transaction, so they commit with the
    records they apply) and return those an earlier push job of the site already applied: one INSERT …
    ON CONFLICT DO NOTHING, and a look-up only when it did not insert them all (a resend). An id another
    job is inserting in a transaction still open waits for that transaction, so the answer is exact."""
    ids = list(dict.fromkeys(sync_ids))
    if not ids:
        return set()
    inserted = session.execute(text("""
        INSERT INTO msupply_sync_ids (tenant_id, site_id, sync_id, job_id)
        SELECT :t, :s, i, CAST(:job AS uuid) FROM unnest(CAST(:ids AS text[])) AS i
        ON CONFLICT DO NOTHING
    """), {"t": tenant_id, "s": site_id, "ids": ids, "job": str(job_id)}).rowcount
    # the ids this job holds (inserted now, or by an earlier delivery of it) are not "seen"
    return seen_sync_ids(session, tenant_id, site_id, ids, job_id) if inserted < len(ids) else set()


def earlier_unapplied_push(session: Session, tenant_id: str, site_id: int, job_id):
    """The latest push job of the site accepted before `job_id` whose records are not all applied yet
    (queued, or running short of its last checkpoint), if any. Open jobs are few: the open-jobs index
    finds them."""
    return session.execute(text("""
        SELECT j.id FROM jobs j JOIN jobs me ON me.id = CAST(:job AS uuid)
         WHERE j.status IN ('QUEUED', 'RUNNING') AND j.tenant_id = :t AND j.kind = :kind
           AND (j.params ->> 'site_id')::int = :s AND (j.created_at, j.id) < (me.created_at, me.id)
           AND (j.progress_total IS NULL OR j.checkpoint < j.progress_total)
         ORDER BY j.created_at DESC, j.id DESC LIMIT 1
    """), {"t": tenant_id, "s": site_id, "job": str(job_id), "kind": PUSH.name}).scalar()


# --- sites ---------------------------------------------------------------------------------------

class SiteExists(Exception):
    pass


SITE_FIELDS = ("store_id", "name_id", "supplying_store_id", "supplying_store_name_id")


def create_site(session: Session, *, tenant_id: str, site_id: int, name: str, password: str,
                rounds: int = 12, **fields) -> Site:
    ensure_tenant(session, tenant_id)
    values = {k: fields.get(k) or "" for k in SITE_FIELDS}
    inserted = session.execute(pg_insert(Site).values(
        tenant_id=tenant_id, site_id=site_id, name=name, password_hash=hash_password(password, rounds), **values,
    ).on_conflict_do_nothing().returning(Site.site_id)).scalar_one_or_none()
    if inserted is None:
        raise SiteExists(name)
    return get_site(session, tenant_id, site_id)


def get_site(session: Session, tenant_id: str, site_id: int) -> Site | None:
    return session.get(Site, (tenant_id, site_id), populate_existing=True)


def site_by_name(session: Session, name: str) -> Site | None:
    return session.execute(select(Site).where(Site.name == name)).scalar_one_or_none()


_SITE_COLUMNS = ", ".join(c.name for c in Site.__table__.columns)


def site_row_by_name(session: Session, name: str):
    """The site of this name as a read-only row with the Site's attributes (what a sync request reads on
    every call: one index probe, no ORM identity map), or None."""
    return session.execute(text(f"SELECT {_SITE_COLUMNS} FROM msupply_sites WHERE name = :n"), {"n": name}).first()


def list_sites(session: Session, tenant_id: str | None = None) -> list[Site]:
    stmt = select(Site).order_by(Site.tenant_id, Site.site_id)
    if tenant_id is not None:
        stmt = stmt.where(Site.tenant_id == tenant_id)
    return list(session.execute(stmt).scalars())


def update_site(session: Session, site: Site, *, password: str | None = None, rounds: int = 12,
                **fields) -> Site:
    for key, value in fields.items():
        if key in SITE_FIELDS + ("name",) and value is not None:
            setattr(site, key, value)
    if password is not None:
        site.password_hash = hash_password(password, rounds)
    site.updated_at = func.now()
    session.flush()
    session.refresh(site)
    return site


def delete_site(session: Session, site: Site) -> None:
    clear_queue(session, site.tenant_id, site.site_id)
    session.execute(text("DELETE FROM msupply_sync_ids WHERE tenant_id = :t AND site_id = :s"),
                    {"t": site.tenant_id, "s": site.site_id})
    session.delete(site)
    session.flush()


def bind_hardware(session: Session, site: Site, hardware_id: str) -> bool:
    """Store the first hardware id seen (atomically); True when the site is (now) bound to it."""
    session.execute(text("""
        UPDATE msupply_sites SET hardware_id = :h, updated_at = now()
         WHERE tenant_id = :t AND site_id = :s AND hardware_id IS NULL
    """), {"h": hardware_id, "t": site.tenant_id, "s": site.site_id})
    bound = session.execute(text("SELECT hardware_id FROM msupply_sites WHERE tenant_id = :t AND site_id = :s"),
                            {"t": site.tenant_id, "s": site.site_id}).scalar()
    return bound == hardware_id


def reset_hardware(session: Session, site: Site) -> None:
    site.hardware_id = None
    site.updated_at = func.now()
    session.flush()


def check_password_digest(password_hash: str, sent: str, *, allow_plain: bool) -> bool:
    """mSupply credentials: the stored hash is bcrypt(sha256 hex of the password). A v2+ client sends
    the SHA-256 hex, checked as is; a v1 client (and a mobile user) may send the plain password, which is
    hashed first."""
    candidates = [sent.lower()] if _is_sha256_hex(sent) else []
    if allow_plain:
        candidates.append(hashlib.sha256(sent.encode("utf-8")).hexdigest())
    for candidate in candidates:
        try:
            if bcrypt.checkpw(candidate.encode(), password_hash.encode()):
                return True
        except ValueError:
            return False
    return False


def check_site_password(site: Site, sent: str, *, allow_plain: bool) -> bool:
    return check_password_digest(site.password_hash, sent, allow_plain=allow_plain)


def _is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(ch in "0123456789abcdefABCDEF" for ch in value)


def open_dump_job(session: Session, tenant_id: str, site_id: int):
    """The site's initial dump still queued or running, if any."""
    return session.execute(text("""
        SELECT id FROM jobs WHERE tenant_id = :t AND kind = :kind
           AND status IN ('QUEUED', 'RUNNING') AND (params ->> 'site_id')::int = :s
         ORDER BY created_at DESC LIMIT 1
    """), {"t": tenant_id, "s": site_id, "kind": INITIAL_DUMP.name}).scalar()


def lock_site(session: Session, tenant_id: str, site_id: int) -> None:
    """Serialise requests that must not overlap for one site (starting a dump)."""
    session.execute(text("SELECT 1 FROM msupply_sites WHERE tenant_id = :t AND site_id = :s FOR UPDATE"),
                    {"t": tenant_id, "s": site_id})


# --- v4: name_store_join ---------------------------------------------------------------------------

def live_record(session: Session, tenant_id: str, key: str) -> bool:
    return session.execute(text(f"""
        SELECT NOT deleted FROM records WHERE tenant_id = :t AND namespace = '{NAMESPACE}' AND record_key = :k
    """), {"t": tenant_id, "k": key}).scalar() is True


def find_name_store_join(session: Session, tenant_id: str, name_id: str, store_id: str) -> str | None:
    """The id of a live join of this name and store, if there is one."""
    return session.execute(text(f"""
        SELECT substr(record_key, length('name_store_join:') + 1) FROM records
         WHERE tenant_id = :t AND namespace = '{NAMESPACE}' AND record_type = 'name_store_join'
           AND NOT deleted AND data ->> 'name_ID' = :n AND data ->> 'store_ID' = :s LIMIT 1
    """), {"t": tenant_id, "n": name_id, "s": store_id}).scalar()


# --- merges ---------------------------------------------------------------------------------------

def records_naming(session: Session, tenant_id: str, drop: str, keep: str):
    """Live records with a top-level field equal to `drop`, with `data` as it is once `drop` is replaced
    by `keep` (a merge repoints them): rows of (record_key, record_type, meta, data)."""
    return session.execute(text("""
        SELECT r.record_key, r.record_type, r.meta,
               (SELECT jsonb_object_agg(e.key, CASE WHEN e.value = to_jsonb(CAST(:drop AS text))
                                                    THEN to_jsonb(CAST(:keep AS text)) ELSE e.value END)
                  FROM jsonb_each(r.data) e) AS data
          FROM records r
         WHERE r.tenant_id = :t AND r.namespace = :ns AND NOT r.deleted AND jsonb_typeof(r.data) = 'object'
           AND EXISTS (SELECT 1 FROM jsonb_each_text(r.data) e WHERE e.value = :drop)
    """), {"t": tenant_id, "ns": NAMESPACE, "drop": drop, "keep": keep}).all()


def join_name_to_store(session: Session, site: Site, name_id: str, store_id: str, *, hooks=()) -> dict:
    """v4 name_store_join: make a name (patient) visible in a store. An existing live join is answered
    as it is; otherwise a new one goes through the engine (a version, audit and fan-out to the other
    sites of the store). The asking site builds its own copy from the answer, so it is the change's
    origin (no echo). Raises LookupError naming what is unknown."""
    if not live_record(session, site.tenant_id, f"name:{name_id}"):
        raise LookupError(f"name {name_id} is not known")
    if not live_record(session, site.tenant_id, f"store:{store_id}"):
        raise LookupError(f"store {store_id} is not known")
    existing = find_name_store_join(session, site.tenant_id, name_id, store_id)
    if existing is not None:
        return {"name_ID": name_id, "store_ID": store_id, "inactive": False, "ID": existing}
    join_id = uuid.uuid4().hex.upper()
    data = {"ID": join_id, "name_ID": name_id, "store_ID": store_id, "inactive": False}
    origin = site_origin(site.site_id)
    apply_chunk(session, tenant_id=site.tenant_id, namespace=NAMESPACE, actor=origin, origin=origin, hooks=hooks,
                records=[Incoming(position=0, key=f"name_store_join:{join_id}", record_type="name_store_join",
                                  data=data, meta={"store_id": store_id})])
    return data
