"""The engine's exporter: one namespace's records (a version range of one tenant) to Parquet files and a
`manifest.json`, for every dialect. PostgreSQL renders each file's rows as flat columns and streams them
out with COPY; pyarrow parses that stream into record batches and a ParquetWriter writes them row group
by row group, so memory stays flat whatever the size of the export.

A dialect with its own export shape (Synkronus's /dataexport/parquet) passes its own `Layout`: its fixed
columns, the prefix of flattened data keys, whether a JSON null counts as a type of its own, whether
deleted records are left out, and the row order.

Column types of a flattened key (the JSON types it holds across the file's rows): only numbers →
float64, only booleans → bool, anything else → utf8 (strings as themselves, other values as JSON text).
A file flattens at most `export_max_columns` keys (in sorted order); the others go, as one JSON object,
into a `data_json` column."""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from croniter import croniter

from models import exports as store
from models.db import session_scope
from models.engine import current_version
from models.kinds import EXPORT
from models.tables import TERMINAL_STATUSES, Job
from workers.api import submit_job
from workers.errors import JobFailed

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RUN_ZIP = "export.zip"
OVERFLOW_KEY = "json"  # data_json: the keys past the column cap
PARTITIONS = ("record_type", "day")
MAX_RECORD_TYPES = 100

ARROW = {"utf8": pa.string(), "int64": pa.int64(), "bool": pa.bool_(), "float64": pa.float64(),
         "timestamp": pa.timestamp("us", tz="UTC")}
_CSV_TYPE = {**ARROW, "timestamp": pa.int64()}  # times leave PostgreSQL as epoch microseconds


def _export_pool() -> pa.MemoryPool:
    """The memory pool of an export's buffers: jemalloc, which hands freed pages back to the system
    (jemalloc_set_decay_ms only sets the decay of arenas made after the call; the arenas already made keep
    the decay read at load, see workers.celery_main for why its muzzy decay is 0). With mimalloc (pyarrow's usual default) the same bounded working set leaves a footprint that
    grows with the number of chunks a file runs through. Buffers that pyarrow's C++ side allocates from
    its default pool follow ARROW_DEFAULT_MEMORY_POOL, read once at import: the worker's entry point
    (workers.celery_main) sets it to jemalloc. The default pool where jemalloc is not built."""
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(0)
    except (NotImplementedError, pa.ArrowNotImplementedError):
        return pa.default_memory_pool()
    return pool


@dataclass(frozen=True)
class Layout:
    """How the rows of a file become columns. `fixed`: (name, SQL expression, kind[, nullable])."""
    fixed: tuple
    prefix: str = "data_"
    null_is_a_type: bool = False
    live_only: bool = False
    order_by: str = "version"


ENGINE_LAYOUT = Layout(fixed=store.ENGINE_COLUMNS)


@dataclass
class FilePlan:
    path: str
    group: str            # the schema group: the record type, or "" when files are not split by type
    record_type: str | None
    day: str | None
    rows: int
    keys: list[tuple[str, str]] = field(default_factory=list)   # (data key, kind), flattened
    overflow: list[str] | None = None                           # keys in data_json, or None


class ExportCancelled(Exception):
    pass


# --- spec --------------------------------------------------------------------------------------------

class SpecError(ValueError):
    """A spec that cannot run; the message says why (and quotes nothing from records)."""


def parse_spec(body, namespaces: list[str]) -> dict:
    """The normalised spec of POST /exports (and of a schedule): namespace, record_types, since_version,
    until, partition_by. Raises SpecError."""
    if not isinstance(body, dict):
        raise SpecError("the export spec must be a JSON object")
    unknown = set(body) - {"namespace", "record_types", "since_version", "until", "partition_by", "tenant"}
    if unknown:
        raise SpecError(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    namespace = body.get("namespace")
    if not isinstance(namespace, str) or namespace not in namespaces:
        raise SpecError(f"namespace must be one of: {', '.join(namespaces)}")
    types = body.get("record_types")
    if types is None:
        types = []
    if (not isinstance(types, list) or len(types) > MAX_RECORD_TYPES
            or not all(isinstance(t, str) and 0 < len(t) <= 256 and "\x00" not in t and t.isprintable()
                       for t in types)):
        raise SpecError(f"record_types must be an array of at most {MAX_RECORD_TYPES} non-empty strings")
    since = _version(body.get("since_version", 0), "since_version")
    until = body.get("until")
    if until is not None:
        until = _version(until, "until")
        if until < since:
            raise SpecError("until must not be below since_version")
    partition_by = body.get("partition_by", ["record_type"])
    if (not isinstance(partition_by, list) or not all(isinstance(p, str) and p in PARTITIONS for p in partition_by)
            or len(set(partition_by)) != len(partition_by)):
        raise SpecError('partition_by must be an array of "record_type" and/or "day"')
    return {"namespace": namespace, "record_types": sorted(set(types)), "since_version": since, "until": until,
            "partition_by": [p for p in PARTITIONS if p in partition_by]}


def _version(value, name: str) -> int:
    if type(value) is not int or not 0 <= value < 2 ** 63:
        raise SpecError(f"{name} must be a version: an integer from 0")
    return value


def parse_cron(expression) -> str:
    """A five-field cron expression (UTC), or SpecError."""
    if not isinstance(expression, str) or len(expression) > 128 or len(expression.split()) != 5:
        raise SpecError('cron must be a five-field cron expression, e.g. "0 2 * * *"')
    expression = " ".join(expression.split())
    if not croniter.is_valid(expression):
        raise SpecError('cron does not parse: expected five fields, e.g. "0 2 * * *"')
    return expression


def next_fire(expression: str, after: dt.datetime) -> dt.datetime:
    return croniter(expression, after).get_next(dt.datetime)


def confine_target(root: Path, target) -> str:
    """The target directory as a path relative to `root`; SpecError when it is not inside it (`..`,
    an absolute path elsewhere, or a symbolic link that leads out)."""
    if not isinstance(target, str) or not target.strip() or len(target) > 1024 or "\x00" in target:
        raise SpecError("target must be a directory path inside the export target root")
    if ".." in Path(target).parts:
        raise SpecError("target must not contain '..'")
    base = Path(root).resolve()
    resolved = (base / target).resolve()
    if resolved != base and base not in resolved.parents:
        raise SpecError("target must be inside the export target root (EXPORT_TARGET_ROOT)")
    return str(resolved.relative_to(base)) if resolved != base else "."


# --- planning ----------------------------------------------------------------------------------------

def column_kind(types: set[str], null_is_a_type: bool) -> str:
    found = set(types)
    if not null_is_a_type:
        found.discard(store.NULL)
    if found == {store.NUMBER}:
        return "float64"
    if found == {store.BOOLEAN}:
        return "bool"
    return "utf8"


_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')


def file_stem(name: str) -> str:
    """A record type as a file name: each of / \\ : * ? " < > | (and control characters) becomes _,
    cut to 100 characters; a name that would be hidden or empty starts with _."""
    stem = _UNSAFE.sub("_", name)[:100]
    if not stem or stem.startswith("."):
        stem = ("_" + stem)[:100]
    return stem


def plan_files(session, scope: store.Scope, layout: Layout, partition_by: list[str], *, max_columns: int,
               previous: dict | None = None, single_name: str = "records") -> tuple[list[FilePlan], dict, list]:
    """(files, schemas {group: {key: kind}}, widened) for the scope. A key whose kind differs from the
    one in `previous` (the last run of the same schedule) is widened to utf8 and listed in `widened`."""
    found = store.key_types(session, scope)
    planner = _Planner(layout, partition_by, max_columns=max_columns, previous=previous, single_name=single_name)
    files = [planner.plan(part, lambda record_type: found) for part in planner.parts(session, scope)]
    return files, planner.schemas, planner.widened


class _Planner:
    """The files of a scope, planned one at a time in order: a group's schema is made when its first
    file is planned, from the keys `keys_of(record_type)` returns ({record_type: {key: {JSON types}}},
    for that record type or for all of them)."""

    def __init__(self, layout: Layout, partition_by: list[str], *, max_columns: int, previous: dict | None,
                 single_name: str):
        self.layout, self.max_columns, self.single_name = layout, max_columns, single_name
        self.by_type = "record_type" in partition_by
        self.by_day = "day" in partition_by
        self.previous = previous or {}
        self.schemas: dict[str, dict[str, str]] = {}
        self.widened: list[dict] = []
        self.used: set = set()

    def parts(self, session, scope: store.Scope) -> list[tuple[str, str | None, int]]:
        return store.partitions(session, scope, by_day=self.by_day)

    def _schema(self, group_name: str, found: dict) -> dict[str, str]:
        merged: dict[str, set[str]] = {}
        for record_type, keys in found.items():
            if (record_type if self.by_type else "") == group_name:
                for key, types in keys.items():
                    merged.setdefault(key, set()).update(types)
        kinds = {key: column_kind(types, self.layout.null_is_a_type) for key, types in merged.items()}
        before = self.previous.get(group_name) or {}
        for key, kind in before.items():
            if key not in kinds:
                kinds[key] = kind  # a column of an earlier run stays a column (all null here)
            elif kinds[key] != kind:
                self.widened.append({"group": group_name, "column": self.layout.prefix + key, "was": kind,
                                     "found": kinds[key], "written": "utf8"})
                kinds[key] = "utf8"
        return kinds

    def plan(self, part: tuple[str, str | None, int], keys_of: Callable[[str], dict]) -> FilePlan:
        record_type, day, rows = part
        by_type = self.by_type
        group_name = record_type if by_type else ""
        if group_name not in self.schemas:
            self.schemas[group_name] = self._schema(group_name, keys_of(record_type))
        kinds = self.schemas[group_name]
        ordered = sorted(kinds)
        flat, rest = ordered[:self.max_columns], ordered[self.max_columns:]
        if rest and OVERFLOW_KEY in flat:
            flat.remove(OVERFLOW_KEY)
            rest.append(OVERFLOW_KEY)
        stem = file_stem(record_type) if by_type else None
        if by_type and day is not None:
            path = f"{stem}/{day}.parquet"
        elif by_type:
            path = f"{stem}.parquet"
        else:
            path = f"{day}.parquet" if day is not None else f"{self.single_name}.parquet"
        path = _unique(path, self.used)
        return FilePlan(path=path, group=group_name, record_type=record_type if by_type else None,
                        day=day, rows=rows, keys=[(k, kinds[k]) for k in flat],
                        overflow=sorted(rest) if rest else None)


class _KeyDiscovery(threading.Thread):
    """The keys of each record type (models.exports.key_types), one record type after the other in the
    order of the files, on a second connection that shares the export's snapshot: the scan for the next
    file's keys runs while the current file is written, instead of one scan of everything before the
    first file. `keys_of(record_type)` waits for that record type's keys."""

    def __init__(self, sessions, snapshot_id: str, scope: store.Scope, record_types: list[str]):
        super().__init__(name="export-keys", daemon=True)
        self.sessions, self.snapshot_id, self.scope, self.record_types = sessions, snapshot_id, scope, record_types
        self.found: dict[str, dict] = {}
        self.error: BaseException | None = None
        self.stopping = False
        self.ready = threading.Condition()

    def run(self) -> None:
        try:
            with session_scope(self.sessions) as session:
                store.snapshot(session, imported=self.snapshot_id)
                for record_type in self.record_types:
                    if self.stopping:
                        break
                    found = store.key_types(session, self.scope, record_type=record_type)
                    with self.ready:
                        self.found[record_type] = found
                        self.ready.notify_all()
                session.rollback()
        except BaseException as exc:  # handed to the writing side
            with self.ready:
                self.error = exc
                self.ready.notify_all()

    def keys_of(self, record_type: str) -> dict:
        with self.ready:
            while record_type not in self.found:
                if self.error is not None:
                    raise self.error
                if not self.is_alive():
                    raise RuntimeError("the export's key discovery ended early")
                self.ready.wait(1.0)
            return self.found.pop(record_type)

    def stop(self) -> None:
        self.stopping = True
        self.join()


def _unique(path: str, used: set) -> str:
    """Two record types may sanitise to the same name: the later one gets ~2, ~3, …"""
    candidate, n = path, 1
    while candidate.lower() in used:
        n += 1
        stem, _, ext = path.rpartition(".")
        candidate = f"{stem}~{n}.{ext}"
    used.add(candidate.lower())
    return candidate


# --- writing -----------------------------------------------------------------------------------------

def _fixed(layout: Layout):
    for column in layout.fixed:
        name, sql, kind = column[:3]
        nullable = column[3] if len(column) > 3 else True
        yield name, sql, kind, nullable


def file_schema(layout: Layout, fp: FilePlan) -> tuple[pa.Schema, list[str]]:
    fields, kinds = [], []
    for name, _, kind, nullable in _fixed(layout):
        fields.append(pa.field(name, ARROW[kind], nullable=nullable))
        kinds.append(kind)
    for key, kind in fp.keys:
        fields.append(pa.field(layout.prefix + key, ARROW[kind]))
        kinds.append(kind)
    if fp.overflow is not None:
        fields.append(pa.field(layout.prefix + OVERFLOW_KEY, pa.string()))
        kinds.append("utf8")
    return pa.schema(fields), kinds


def schema_json(schema: pa.Schema) -> list[dict]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


class _Copy(threading.Thread):
    """One file's rows: its plan (made in this thread by `plan()`, which may wait for the file's keys),
    then its SELECT streamed out with COPY into a pipe, on a connection of its own that imports the
    export's snapshot. The next file's copy is started while the current file is written, so a file
    whose order no index serves (the Synkronus ZIP's created_at) is scanned and sorted by PostgreSQL
    while the file before it is parsed, instead of the writer waiting for each sort in turn. Nothing
    runs further ahead than the pipe: a copy whose file is not read yet waits in PostgreSQL."""

    def __init__(self, sessions, snapshot_id: str, plan: Callable[[], tuple[FilePlan, str, dict]]):
        super().__init__(name="export-copy", daemon=True)
        self.sessions, self.snapshot_id, self.plan = sessions, snapshot_id, plan
        self.read_fd, self.write_fd = os.pipe()
        self.planned = threading.Event()
        self.fp: FilePlan | None = None
        self.failure: BaseException | None = None
        self.taken = False
        self.cancelled = False

    def run(self) -> None:
        try:
            with open(self.write_fd, "wb", buffering=1 << 16) as out:
                try:
                    self.fp, sql, params = self.plan()
                finally:
                    self.planned.set()
                if self.cancelled:
                    return
                with session_scope(self.sessions) as session:
                    store.snapshot(session, imported=self.snapshot_id)
                    connection = session.connection()
                    try:
                        store.copy_csv(session, sql, params, out)
                    except BaseException:
                        connection.invalidate()  # a COPY cut short leaves its connection unusable
                        raise
                    session.rollback()
        except BaseException as exc:  # handed to the reading side
            self.failure = exc

    def file_plan(self) -> FilePlan:
        self.planned.wait()
        if self.fp is None:
            self.join()
            raise self.failure or RuntimeError("the export's file could not be planned")
        return self.fp

    def source(self):
        """The read end of the pipe (once)."""
        self.taken = True
        return open(self.read_fd, "rb")

    def finish_quietly(self) -> None:
        """Stop the copy (closing an untaken read end makes its writes fail) and wait for it to end; for
        a file that will not be written, so what it failed with is dropped."""
        self.cancelled = True
        if not self.taken:
            self.taken = True
            os.close(self.read_fd)
        self.join()


def write_file(copy: _Copy, layout: Layout, fp: FilePlan, dest: Path, *, row_group_rows: int,
               on_rows: Callable[[int], None]) -> dict:
    """Stream one file's rows from its COPY (started) into a Parquet file at `dest`; its manifest entry."""
    schema, kinds = file_schema(layout, fp)
    names = [f"c{i}" for i in range(len(kinds))]
    pool = _export_pool()

    def open_writer(first_group: pa.Table):
        return pq.ParquetWriter(dest, schema, compression="zstd", write_batch_size=PIECE, memory_pool=pool,
                                use_dictionary=dictionary_columns(first_group))

    with copy.source() as source:
        groups = _RowGroups(open_writer, schema, row_group_rows, pool)
        try:
            for batch in _csv_batches(source, names, kinds, pool=pool):
                arrays = [column.cast(ARROW[kind], memory_pool=pool) if kind == "timestamp" else column
                          for column, kind in zip(batch.columns, kinds)]
                groups.feed(pa.RecordBatch.from_arrays(arrays, schema=schema))
                on_rows(batch.num_rows)
            groups.flush()
        finally:
            groups.close()
        rows = groups.written
    copy.join()
    if copy.failure is not None:
        raise copy.failure
    pool.release_unused()  # hand the file's buffers back before the next one
    sha, size = _digest(dest)
    return {"path": fp.path, "record_type": fp.record_type, "day": fp.day, "rows": rows, "bytes": size,
            "sha256": sha, "schema": schema_json(schema),
            "schema_sha256": hashlib.sha256(orjson.dumps(schema_json(schema))).hexdigest(),
            "flattened_keys": len(fp.keys), "overflow_keys": len(fp.overflow or [])}


CSV_CHUNK = 1 << 20  # bytes of COPY output parsed at a time


def _csv_batches(source, names: list[str], kinds: list[str], chunk_bytes: int = CSV_CHUNK,
                 pool: pa.MemoryPool | None = None):
    """The record batches of the CSV stream `source`, parsed a chunk at a time, each chunk cut after
    its last whole row, in one buffer that is reused (the parsed columns are copies). Nothing reads ahead
    of the parser (pyarrow's streaming CSV reader keeps up to 32 blocks in flight, which for a producer
    faster than the writer is as much as the whole file), so the memory held is one chunk and its
    batches whatever the size of the file."""
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(column_types={n: _CSV_TYPE[k] for n, k in zip(names, kinds)},
                                   strings_can_be_null=True, quoted_strings_can_be_null=False,
                                   null_values=[""], true_values=["t"], false_values=["f"])

    def parsed(end):
        read_opts = pacsv.ReadOptions(column_names=names, block_size=end + 1, use_threads=False)
        table = pacsv.read_csv(pa.BufferReader(pa.py_buffer(buffer).slice(0, end)), read_options=read_opts,
                               parse_options=parse, convert_options=convert, memory_pool=pool)
        return table.to_batches()

    buffer = bytearray(chunk_bytes)
    filled = 0
    while True:
        if filled == len(buffer):  # a row longer than the buffer: make room for it
            grown = bytearray(2 * len(buffer))
            grown[:filled] = buffer
            buffer = grown
        with memoryview(buffer) as view:
            got = source.readinto(view[filled:])
        if not got:
            break
        filled += got
        cut = _rows_end(buffer, filled)
        if cut:
            yield from parsed(cut)
            buffer[:filled - cut] = buffer[cut:filled]
            filled -= cut
    if filled:
        yield from parsed(filled)


def _rows_end(data, size: int) -> int:
    """The offset just past the last row end in the first `size` bytes of CSV text `data` (0 when there
    is none): the last newline with an even number of double quotes before it (PostgreSQL quotes a field
    holding a newline and doubles its quotes, so a newline inside a value has an odd count before it)."""
    before = data.count(b'"', 0, size)
    end = size
    while True:
        newline = data.rfind(b"\n", 0, end)
        if newline < 0:
            return 0
        before -= data.count(b'"', newline, end)
        if before % 2 == 0:
            return newline + 1
        end = newline


PIECE = 1024  # rows: the Parquet writer's write batch (write_batch_size), where it checks its page limits

# A column is dictionary-encoded when its first row group holds at most this share of distinct values.
# Parquet's writer otherwise dictionary-encodes every column, and a column of (nearly) unique values (keys,
# versions, times, free text) then costs a hash of every value and a dictionary page as large as the data,
# for nothing: a third of the writer's time in the benchmark's export.
DICTIONARY_MAX_DISTINCT = 0.5


def dictionary_columns(first_group: pa.Table) -> list[str]:
    """The columns to dictionary-encode, decided once per file from its first row group (the same rows
    always make the same decision, so a rerun still writes the same bytes)."""
    chosen = []
    for name, column in zip(first_group.column_names, first_group.columns):
        if pa.types.is_boolean(column.type):
            continue
        present = len(column) - column.null_count
        if present and pc.count_distinct(column).as_py() <= DICTIONARY_MAX_DISTINCT * present:
            chosen.append(name)
    return chosen


class _RowGroups:
    """Cuts the stream into row groups of exactly `size` rows, so the same rows always make the same
    bytes whatever sizes the CSV chunks had. A row group is written from the parsed batches themselves,
    not from a combined copy of them: it is held as pieces of a multiple of PIECE rows (zero-copy slices
    of a parsed batch; only the rows of a piece that spans two batches are copied), so the writer meets
    the same write batches, and cuts the same pages, as from one contiguous column, while the memory
    held is one row group and one chunk (a combined copy doubled it)."""

    def __init__(self, open_writer, schema, size: int, pool: pa.MemoryPool | None = None):
        """`open_writer(first_row_group)` makes the ParquetWriter when the first row group is complete."""
        self.open_writer, self.writer, self.schema, self.size, self.pool = open_writer, None, schema, size, pool
        self.loose: list = []   # parsed batches not yet placed in the row group
        self.loose_rows = 0
        self.group: list = []   # the row group's pieces, each but the last of a multiple of PIECE rows
        self.group_rows = 0
        self.written = 0

    def feed(self, batch) -> None:
        if not batch.num_rows:
            return
        self.loose.append(batch)
        self.loose_rows += batch.num_rows
        while True:
            need = self.size - self.group_rows
            take = need if self.loose_rows >= need else self.loose_rows - self.loose_rows % PIECE
            if not take:
                return
            self.group.append(self._take(take))
            self.group_rows += take
            if self.group_rows == self.size:
                self._write(self.size)

    def _take(self, rows: int):
        """The first `rows` loose rows as one contiguous batch."""
        first = self.loose[0]
        if first.num_rows >= rows:
            piece = first.slice(0, rows)
            rest = [first.slice(rows)] if first.num_rows > rows else []
            self.loose = rest + self.loose[1:]
        else:
            table = pa.Table.from_batches(self.loose, schema=self.schema)
            piece = table.slice(0, rows).combine_chunks(memory_pool=self.pool).to_batches()[0]
            self.loose = [b for b in table.slice(rows).to_batches() if b.num_rows]
        self.loose_rows -= rows
        return piece

    def _write(self, row_group_size: int) -> None:
        table = pa.Table.from_batches(self.group, schema=self.schema)
        if self.writer is None:
            self.writer = self.open_writer(table)
        self.writer.write_table(table, row_group_size=row_group_size)
        self.written += self.group_rows
        self.group, self.group_rows = [], 0

    def flush(self) -> None:
        if self.loose_rows:
            self.group.append(self._take(self.loose_rows))
            self.group_rows = sum(b.num_rows for b in self.group)
        if self.group_rows:
            self._write(max(self.size, self.group_rows))
        self.loose, self.loose_rows = [], 0
        if self.writer is None:  # no rows: a file of the schema alone
            self.writer = self.open_writer(self.schema.empty_table())

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def export_files(sessions, scope: store.Scope, layout: Layout, partition_by: list[str], dest: Path, *,
                 max_columns: int, row_group_rows: int, previous: dict | None = None,
                 progress: Callable[[int, int], None] = lambda done, total: None,
                 single_name: str = "records") -> dict:
    """Write every file of the scope under `dest` (which must exist), all read in one snapshot. Returns
    {"files": [entries], "schemas": …, "widened": […], "rows": n}; writes no manifest."""
    factory = sessions
    planner = _Planner(layout, partition_by, max_columns=max_columns, previous=previous, single_name=single_name)
    with session_scope(factory) as session:
        store.snapshot(session)
        parts = planner.parts(session, scope)
        snapshot_id = store.export_snapshot(session) if parts else None
        ahead = None
        discovery = None
        if planner.by_type and len(parts) > 1:
            # each file's keys are found while the one before it is written (see _KeyDiscovery)
            discovery = _KeyDiscovery(factory, snapshot_id, scope,
                                      list(dict.fromkeys(part[0] for part in parts)))
            discovery.start()
            keys_of = discovery.keys_of
        else:
            found = store.key_types(session, scope) if parts else {}
            keys_of = lambda record_type: found  # noqa: E731
        try:
            total = sum(part[2] for part in parts)
            done = [0]
            progress(0, total)

            def on_rows(n):
                done[0] += n
                progress(done[0], total)

            fixed = [(name, sql) for name, sql, _, _ in _fixed(layout)]

            def start(part) -> _Copy:
                def plan():
                    fp = planner.plan(part, keys_of)
                    sql, params = store.file_select(scope, fixed=fixed, keys=fp.keys, overflow_keys=fp.overflow,
                                                    record_type=fp.record_type, day=fp.day,
                                                    order_by=layout.order_by)
                    return fp, sql, params
                copy = _Copy(factory, snapshot_id, plan)
                copy.start()
                return copy

            entries = []
            ahead = start(parts[0]) if parts else None
            for i in range(len(parts)):
                copy, ahead = ahead, None
                try:
                    fp = copy.file_plan()  # planned before the next file is (the planner goes in order)
                    ahead = start(parts[i + 1]) if i + 1 < len(parts) else None
                    path = dest / fp.path
                    path.parent.mkdir(parents=True, exist_ok=True)
                    entries.append(write_file(copy, layout, fp, path, row_group_rows=row_group_rows,
                                              on_rows=on_rows))
                except BaseException:
                    copy.finish_quietly()
                    raise
        finally:
            if discovery is not None:
                discovery.stop()  # first: a copy still waiting for its keys then stops waiting
            if ahead is not None:
                ahead.finish_quietly()
        session.rollback()
    schemas, widened = planner.schemas, planner.widened
    return {"files": entries, "schemas": schemas, "widened": widened, "rows": sum(e["rows"] for e in entries)}


def manifest_of(result: dict, *, job_id, tenant_id: str, scope: store.Scope, spec: dict, created_at: str,
                max_columns: int) -> dict:
    return {
        "format": "fieldsync-export/1", "job_id": str(job_id), "tenant": tenant_id, "namespace": scope.namespace,
        "created_at": created_at, "versions": {"after": scope.since, "through": scope.until},
        "spec": spec, "rows": result["rows"], "files": result["files"], "widened": result["widened"],
        "max_columns": max_columns, "overflow_column": "data_" + OVERFLOW_KEY,
    }


def write_json(path: Path, value) -> None:
    with open(path, "wb") as f:
        f.write(orjson.dumps(value, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())


def zip_dir(members: list[tuple[str, Path]], out: Path) -> None:
    """A ZIP of the files (stored: Parquet is compressed already), with fixed entry times so the same
    files make the same archive; file contents are copied in chunks, never held whole."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            size = path.stat().st_size
            info.file_size = size
            with open(path, "rb") as src, archive.open(info, "w", force_zip64=size > (1 << 31)) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the job -----------------------------------------------------------------------------------------

def run_dir(settings, job_id) -> Path:
    return Path(settings.export_dir) / str(job_id)


def scope_of(tenant_id: str, params: dict, *, live_only: bool = False) -> store.Scope:
    return store.Scope(tenant_id=tenant_id, namespace=params["namespace"],
                       since=int(params.get("since_version") or 0), until=int(params["until"]),
                       record_types=tuple(params.get("record_types") or ()), live_only=live_only)


def run_export(ctx):
    """The engine.export pipeline: files and manifest in a temp directory renamed into place (a rerun
    after a crash starts that directory afresh), then, for a schedule, landed in its target."""
    settings = ctx.settings
    params = ctx.job.params
    scope = scope_of(ctx.job.tenant_id, params)
    final = run_dir(settings, ctx.job.id)
    # one temp directory per attempt: a delivery that lost its lease and still runs cannot touch this one's
    tmp = final.parent / f".tmp-{ctx.job.id}-{ctx.job.attempts}"
    schedule_id = params.get("schedule_id")
    with ctx.session() as session:
        job = session.get(Job, ctx.job.id)
        created = job.created_at
        schedule = store.get_schedule(session, _uuid(schedule_id)) if schedule_id else None
        previous = dict(schedule.schemas or {}) if schedule is not None else None
    created_text = created.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
    try:
        if (final / MANIFEST).is_file():  # finished on an earlier delivery, only the job's ending was lost
            manifest = orjson.loads((final / MANIFEST).read_bytes())
            schemas = manifest.get("schemas_by_group", {})
        else:
            for stale in final.parent.glob(f".tmp-{ctx.job.id}-*"):  # left by a killed earlier attempt
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir(parents=True)
            result = export_files(ctx.runtime.sessions(), scope, ENGINE_LAYOUT, params.get("partition_by") or [],
                                  tmp, max_columns=settings.export_max_columns,
                                  row_group_rows=settings.export_row_group_rows, previous=previous,
                                  progress=job_progress(ctx))
            schemas = result["schemas"]
            manifest = manifest_of(result, job_id=ctx.job.id, tenant_id=ctx.job.tenant_id, scope=scope,
                                   spec=_spec_of(params), created_at=created_text,
                                   max_columns=settings.export_max_columns)
            manifest["schemas_by_group"] = schemas
            write_json(tmp / MANIFEST, manifest)  # the manifest last
            zip_dir([(f["path"], tmp / f["path"]) for f in manifest["files"]] + [(MANIFEST, tmp / MANIFEST)],
                    tmp / RUN_ZIP)
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        if schedule is not None:
            land(settings, schedule.target, final, manifest, run_name(created, ctx.job.id), schedule.retention)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise JobFailed("disk_full", "no space left on the export volume; nothing of this run was kept") from None
        log.exception("export could not be written")
        raise JobFailed("export_write_failed",
                        f"the export could not be written ({exc.strerror or type(exc).__name__})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if schedule is not None:
        with ctx.session() as session:
            store.run_ended(session, schedule.id, job_id=ctx.job.id, until=scope.until, schemas=schemas)
    with ctx.session() as session:
        ctx.progress(session, done=manifest["rows"], total=manifest["rows"], counts={"rows": manifest["rows"],
                                                                                    "files": len(manifest["files"])})
    return {"manifest": {k: v for k, v in manifest.items() if k != "schemas_by_group"}}


def _spec_of(params: dict) -> dict:
    return {k: params.get(k) for k in ("namespace", "record_types", "since_version", "until", "partition_by")}


def _uuid(value):
    from models.ids import parse_uuid
    return parse_uuid(value)


def job_progress(ctx, every: float = 1.0):
    """A progress callback for export_files: the job's progress at most every `every` seconds (which also
    renews its lease), a heartbeat in between."""
    state = {"at": 0.0}
    heartbeat = ctx.heartbeat()

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - state["at"] < every and done not in (0, total):
            heartbeat()
            return
        state["at"] = now
        with ctx.session() as session:
            ctx.progress(session, done=done, total=total, counts={"rows": done})
    return report


_RUN_NAME = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}$")


def run_name(created: dt.datetime, job_id) -> str:
    """A landed run's directory: the job's creation time (to the microsecond, so names sort as runs
    were submitted) and the start of its id."""
    return f"{created.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S.%fZ}-{str(job_id)[:8]}"


def land(settings, target: str, source: Path, manifest: dict, name: str, retention: int) -> Path:
    """Copy a finished run into the schedule's target: a temp directory (files first, the manifest last)
    renamed into place, then only the newest `retention` runs kept."""
    root = Path(settings.export_root)
    try:
        relative = confine_target(root, target)
    except SpecError:
        raise JobFailed("target_outside_root", "the schedule's target is no longer inside the export "
                                               "target root (a link was changed?); nothing was written") from None
    directory = (root.resolve() / relative)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{name}"
    final = directory / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for entry in manifest["files"]:
            dest = tmp / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / entry["path"], dest)
        shutil.copyfile(source / MANIFEST, tmp / MANIFEST)
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    runs = sorted(p.name for p in directory.iterdir() if p.is_dir() and _RUN_NAME.match(p.name))
    for old in runs[:max(0, len(runs) - max(1, retention))]:
        shutil.rmtree(directory / old, ignore_errors=True)
    return final


# --- schedules ---------------------------------------------------------------------------------------

def submit_export(session, celery_app, *, tenant_id: str, spec: dict, created_by: str | None,
                  schedule_id=None, since: int | None = None, idempotency_key: str | None = None):
    """Submit an engine.export job for a parsed spec; `until` defaults to the tenant's current version
    (everything at or below it is committed), so a restarted run covers the same range."""
    params = dict(spec)
    if since is not None:
        params["since_version"] = since
    if params.get("until") is None:
        params["until"] = max(current_version(session, tenant_id), int(params.get("since_version") or 0))
    if schedule_id is not None:
        params["schedule_id"] = str(schedule_id)
    return submit_job(session, celery_app, tenant_id=tenant_id, kind=EXPORT, params=params,
                      created_by=created_by, idempotency_key=idempotency_key)


def schedule_exports(runtime, celery_app, now: dt.datetime | None = None) -> int:
    """The scheduler's periodic hook: submit a run for every schedule that is due (one missed while
    the scheduler was down runs once), never while the schedule's previous run is still in flight.
    Returns the number of runs submitted."""
    now = now or dt.datetime.now(dt.timezone.utc)
    submitted = 0
    with session_scope(runtime.sessions()) as session:
        for schedule in store.due_schedules(session, now):
            last = session.get(Job, schedule.last_job_id) if schedule.last_job_id else None
            if last is not None and last.status not in TERMINAL_STATUSES:
                log.info("export schedule %s: the previous run is still in flight; this run is skipped",
                         schedule.id)
            else:
                since = schedule.last_until_version
                job, _ = submit_export(session, celery_app, tenant_id=schedule.tenant_id, spec=dict(schedule.spec),
                                       created_by="scheduler", schedule_id=schedule.id,
                                       since=since if since is not None else None,
                                       idempotency_key=f"schedule-{schedule.id}-{schedule.next_run_at.isoformat()}")
                schedule.last_job_id = job.id
                submitted += 1
            schedule.next_run_at = next_fire(schedule.cron, now)
    return submitted


def register(registry, settings) -> None:
    registry.add(EXPORT, run_export)
    registry.add_periodic(schedule_exports)
