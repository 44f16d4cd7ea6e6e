"""DIGIT job kinds (sync files).

`digit.sync_file`: scan the uploaded file (well formed? how many entities?), then stream its entities,
check each against the campaign's form for its schema, and apply the valid ones through the engine a chunk
at a time (namespace "digit", record key "<campaignId>:<schema>:<clientReferenceId>", so a later file with
the same offline id updates the record). Rejected entities are stored on the job with their position,
field and reason. A redelivered job keeps its scan and resumes after its checkpoint."""
from __future__ import annotations

import contextvars
import datetime as dt
import gc
import queue
import sys
import threading
from typing import Iterable, Iterator

from models.digit import NAMESPACE, SYNC_FILE
from models.digit import store as digit
from models.engine import MAX_KEY_LENGTH, MAX_TYPE_LENGTH, Incoming, stage_text
from models.users import ensure_tenant
from workers.api import submit_job
from workers.apply import Rejected, run_apply
from workers.digit.forms import FormValidator, summarise
from workers.digit.syncfile import Limits, Unreadable, entities, scan
from workers.errors import JobFailed
from workers.jsonsafe import as_text, find_bad_text, find_unstorable, storable_json

ORIGIN = "digit.sync_file"
RECORD_TEXT_CAP = 8000
MAX_STRING = 256 * 1024


def record_key(campaign_id: str, schema: str, client_reference_id: str) -> str:
    return f"{campaign_id}:{schema}:{client_reference_id}"


def _text(value) -> str:
    return as_text(value, RECORD_TEXT_CAP)


def _created_at(entity: dict) -> dt.datetime | None:
    audit = entity.get("auditDetails")
    created = audit.get("createdTime") if isinstance(audit, dict) else None
    if isinstance(created, int) and not isinstance(created, bool) and 0 < created < 10**14:
        return dt.datetime.fromtimestamp(created / 1000, dt.timezone.utc)
    return None


class EntityChecker:
    """Turns (position, schema, entity) into an engine record or a rejection."""

    def __init__(self, campaign_id: str, forms: dict[str, dict], forms_expected: bool):
        self.campaign_id = campaign_id
        self.validators = {schema: FormValidator(body) for schema, body in forms.items()}
        # A campaign with no published form at all has nothing to check against; once it has forms, an
        # entity whose schema has none is refused rather than stored unchecked.
        self.forms_expected = forms_expected
        self.meta = {"campaignId": campaign_id}  # one for every record of the job (never changed)
        self._schemas: dict[str, tuple] = {}

    def _schema(self, schema: str) -> tuple:
        """What an entity of `schema` needs, worked out once per schema name: (what is wrong with the
        name, its validator, the validator's version as text, the record key's prefix)."""
        known = self._schemas.get(schema)
        if known is None:
            validator = self.validators.get(schema)
            prefix = record_key(self.campaign_id, schema, "")
            known = (find_bad_text(schema, max_bytes=MAX_TYPE_LENGTH), validator,
                     "" if validator is None else str(validator.version), prefix)
            if len(self._schemas) < 1000:  # a file of a million made-up schema names stays small
                self._schemas[schema] = known
        return known

    def __call__(self, position: int, schema: str | None, entity) -> Incoming | Rejected:
        if isinstance(entity, Unreadable):
            return Rejected(position, None, entity.code, entity.message)
        if schema is not None:
            bad, validator, version, prefix = self._schema(schema)
            if bad is not None:
                return Rejected(position, None, "SCHEMA_TOO_LONG" if bad[0] == "text_too_long" else bad[0].upper(),
                                f"the schema name {bad[1]}", record=_text(entity))
        if schema is None:
            return Rejected(position, None, "BAD_LINE", 'each NDJSON line must be {"schema": "<name>", "data": {...}}',
                            record=_text(entity))
        if not isinstance(entity, dict):
            return Rejected(position, None, "NOT_AN_OBJECT", f"a {schema} entity must be a JSON object",
                            path=schema, record=_text(entity))
        crid = entity.get("clientReferenceId")
        if not isinstance(crid, str) or not crid.strip():
            return Rejected(position, None, "MISSING_CLIENT_REFERENCE_ID",
                            "clientReferenceId (the entity's offline id) is required", path="clientReferenceId",
                            record=_text(entity))
        # Every value PostgreSQL cannot store, anywhere in the entity, before it is written (the walk only
        # when the entity's JSON text cannot prove it clean; that text is then the one stored).
        data_text = storable_json(entity, max_string=MAX_STRING)
        problem = None if data_text is not None else find_unstorable(entity, max_string=MAX_STRING)
        if problem is not None:
            code, message, path = problem
            return Rejected(position, crid, code.upper(), f"{path or 'entity'}: {message}", path=path,
                            record=_text(entity))
        if validator is None and self.forms_expected:
            return Rejected(position, crid, "UNKNOWN_SCHEMA",
                            f"campaign {self.campaign_id} has no form for schema {schema!r}", path=schema,
                            record=_text(entity))
        if validator is not None:
            errors = validator.errors(entity)
            if errors:
                return Rejected(position, crid, errors[0].code, summarise(errors), path=errors[0].path,
                                record=_text(entity))
        key = prefix + crid
        bad = find_bad_text(key, max_bytes=MAX_KEY_LENGTH)
        if bad is not None:
            if bad[0] != "text_too_long":  # in the campaign id: the entity's own values were checked above
                return Rejected(position, crid, bad[0].upper(), f"the record key {bad[1]}", path="campaignId")
            return Rejected(position, crid, "KEY_TOO_LONG", "clientReferenceId is longer than the server accepts",
                            path="clientReferenceId")
        return Incoming(position=position, key=key, record_type=schema, data=entity,
                        deleted=entity.get("isDeleted") is True, schema_version=version,
                        meta=self.meta, created_at=_created_at(entity), data_text=data_text)


def _prepared(check: EntityChecker, found: Iterator[tuple[int, str | None, object]]) -> Iterator[Incoming | Rejected]:
    """Checked entities, each valid one with its staging row built (see models.engine.stage_text)."""
    for position, schema, entity in found:
        item = check(position, schema, entity)
        if type(item) is Incoming:
            item.staged = stage_text(item)
            # the row's text holds the entity from here on: a chunk held in memory is its rows, not the
            # entities' trees (no hook or chunk callback of this pipeline reads them)
            item.data = item.data_text = None
        yield item


def _layout(ctx, path, limits: Limits) -> tuple[dict, int]:
    with ctx.session() as session:
        layout, total = digit.job_scan(session, ctx.job.id)
    if layout is not None and total is not None:
        return layout, total

    layout = scan(path, limits, tick=ctx.heartbeat())
    with ctx.session() as session:
        digit.save_scan(session, ctx.job.id, layout, layout["total"])
    return layout, layout["total"]


def submit_sync_file(session, celery_app, *, tenant_id: str, campaign_id: str, reference: str,
                     stored: digit.DigitFile, audit: dict | None, created_by: str | None):
    """Hand a stored file in as a sync, and commit. A sync is keyed by (tenant, campaign, file hash): the
    same file handed in twice is the same sync. The campaign's forms current now are the ones every
    delivery of the job validates against. Returns the job."""
    ensure_tenant(session, tenant_id)
    forms = {row.schema: row.version
             for row in digit.latest_forms(session, tenant_id=tenant_id, campaign_id=campaign_id)}
    job, _ = submit_job(
        session, celery_app, tenant_id=tenant_id, kind=SYNC_FILE,
        params={"campaignId": campaign_id, "file": reference, "fileStoreId": str(stored.id), "forms": forms,
                "auditDetails": audit},
        idempotency_key=f"{campaign_id}:{stored.sha256}", payload_hash=stored.sha256, blob_sha256=stored.sha256,
        created_by=created_by)
    session.commit()
    return job


def run_sync_file(ctx) -> dict:
    params = ctx.job.params or {}
    campaign_id = params.get("campaignId")
    sha = ctx.job.blob_sha256
    if not campaign_id or not sha:
        raise JobFailed("invalid_job", "the sync job has no campaign or file")
    blobs = ctx.runtime.blobs
    if not blobs.exists(sha):
        raise JobFailed("file_missing", f"the sync file {sha} is not in the blob store")
    path = blobs.path(sha)
    limits = Limits.from_settings(ctx.settings)
    layout, total = _layout(ctx, path, limits)

    versions = {schema: int(v) for schema, v in (params.get("forms") or {}).items()}
    with ctx.session() as session:
        forms = digit.form_versions(session, tenant_id=ctx.job.tenant_id, campaign_id=campaign_id,
                                    versions=versions)
    check = EntityChecker(campaign_id, forms, forms_expected=bool(versions))
    items = _prepared(check, entities(path, layout, start=ctx.job.checkpoint, limits=limits))
    chunk = chunk_size(ctx.settings.chunk_size, total)
    with collector_eased(), read_ahead(items, batches=-(-chunk // AHEAD_BATCH) + 1) as ahead:
        counts = run_apply(ctx, ahead, namespace=NAMESPACE, origin=ORIGIN, transmission=str(ctx.job.id),
                           total=total, chunk_size=chunk, direct=True)
    return {"entities": total, "counts": counts, "forms": versions,
            "parts": [{"member": p["member"], "format": p["format"], "count": p["count"]}
                      for p in layout["parts"]]}


BIG_FILE_CHUNKS = 50     # a file is applied in at least this many chunks …
MAX_CHUNK = 2000         # … of at most this many entities (more than CHUNK_SIZE only for a big file)


def chunk_size(configured: int, total: int) -> int:
    """Entities per chunk for a file of `total`: the configured size, larger for a big file (fewer
    statements, round trips and commits per entity) up to MAX_CHUNK, so progress still moves every
    couple of thousand entities and what a worker holds (a chunk of staging rows and the next one read
    ahead) is the same few megabytes for a file of 100,000 entities or of millions."""
    return max(configured, min(MAX_CHUNK, total // BIG_FILE_CHUNKS))


# --- the cyclic garbage collector during a file ---------------------------------------------------

GC_YOUNG_THRESHOLD = 10_000


class collector_eased:
    """While a file is applied: what the worker holds already (its code, caches, mappers) is left out of
    the collector's scans (gc.freeze), and a young-generation scan waits for 10,000 new objects instead of
    700. Entities are plain trees freed by reference counting; scanning every few hundred of them for
    cycles was a tenth of the worker's time, the whole heap at every full scan. Restored on leaving."""

    def __enter__(self):
        self.thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(max(self.thresholds[0], GC_YOUNG_THRESHOLD), *self.thresholds[1:])
        return self

    def __exit__(self, *exc) -> None:
        gc.set_threshold(*self.thresholds)
        gc.unfreeze()


# --- reading ahead -----------------------------------------------------------------------------------

AHEAD_BATCH = 250      # items handed over at a time
AHEAD_BATCHES = 2      # batches read ahead at most (by default): memory stays flat whatever the file's size
SWITCH_INTERVAL = 0.0005  # while both threads run: a statement's answer is picked up without a 5 ms wait


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


class read_ahead:
    """Iterates `items` (reading and checking the file) in a thread of its own, `batches` of AHEAD_BATCH
    items ahead of the caller at most, so the file is read while the caller waits on PostgreSQL for the
    chunk before (a chunk's worth and one batch more: the whole next chunk is ready when one commits).
    Items come out in order; an exception of the reader is raised in the caller at the point it
    happened; leaving the block early stops the reader. Only one thread writes, so chunks still commit
    one after another."""

    def __init__(self, items: Iterable, batches: int = AHEAD_BATCHES):
        self.items = iter(items)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, batches))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._read,),
                                       name="digit-read-ahead", daemon=True)

    def __enter__(self) -> Iterator:
        self.interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self.interval, SWITCH_INTERVAL))
        self.thread.start()
        return self._drain()

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join()
        sys.setswitchinterval(self.interval)

    def _put(self, value) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        batch = []
        try:
            for item in self.items:
                batch.append(item)
                if len(batch) >= AHEAD_BATCH:
                    if not self._put(batch):
                        return
                    batch = []
            if batch and not self._put(batch):
                return
            self._put(_END)
        except BaseException as exc:  # handed to the caller, raised there after the items before it
            if not batch or self._put(batch):
                self._put(_Raised(exc))
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()  # the file is closed by the thread that read it

    def _drain(self) -> Iterator:
        while True:
            batch = self.queue.get()
            if batch is _END:
                return
            if isinstance(batch, _Raised):
                raise batch.exc
            yield from batch
