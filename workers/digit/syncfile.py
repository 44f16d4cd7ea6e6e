"""Reading a DIGIT sync file with bounded memory.

Three formats are accepted (see docs/digit.md):
- a JSON document `{"entities": {"<schema>": [entity, ...], ...}}`, streamed with ijson;
- NDJSON, one `{"schema": "<schema>", "data": entity}` per line;
- a ZIP archive of such files (`.json`, `.ndjson` or `.jsonl` members), read member by member straight
  from the archive: nothing is ever extracted to disk, so a hostile member name cannot write anywhere.

Work happens in two passes. `scan()` reads the whole file once, checking that it is well formed (so a
truncated, non-UTF-8 or non-JSON file fails before a single entity is applied) and counting entities per
schema; the result (the layout) is small JSON kept on the job. `entities()` then yields
(position, schema, entity) in a stable order derived from that layout, starting at any position, which is
what lets a redelivered job resume from its checkpoint."""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterator

import ijson
import orjson

from workers import archive
from workers.archive import SKIP, ZIP_MAGIC, ArchiveLimits, close_both, open_member
from workers.errors import JobFailed
from workers.jsonsafe import JsonError, has_lone_surrogate_escape
from workers.jsonsafe import loads as safe_loads

MEMBER_SUFFIXES = (".json", ".ndjson", ".jsonl")
VALUE_EVENTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})
READ_SIZE = 1 << 16
WHOLE_READ_MAX = 64 << 20   # a JSON document the streaming parser cannot read exactly is read whole up to this


class Unreadable:
    """Stands in for an entity whose text is JSON no parser here can turn into a value (nested past
    every parser's limit): the entity is rejected, the file goes on."""

    def __init__(self, code: str, message: str):
        self.code, self.message = code, message


@dataclass(frozen=True)
class Limits(ArchiveLimits):
    max_line_bytes: int = 16 << 20

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        return cls(max_member_bytes=settings.max_upload_bytes * 2, max_total_bytes=settings.max_upload_bytes * 4)


Tick = Callable[[], None]


def _noop() -> None:
    pass


class _Counting(io.RawIOBase):
    """Counts bytes read from a plain file, to say where a parse error happened."""

    def __init__(self, raw):
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n

    close = close_both


# --- opening -----------------------------------------------------------------------------------------

class _Source:
    """Opens the parts of a sync file: the file itself, or each member of a ZIP."""

    def __init__(self, path, limits: Limits):
        self.path, self.limits = path, limits
        self.zip: zipfile.ZipFile | None = None

    def __enter__(self):
        with open(self.path, "rb") as f:
            head = f.read(4)
        if head in ZIP_MAGIC:
            try:
                self.zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise JobFailed("archive_rejected", f"not a readable ZIP archive ({exc})") from None
        return self

    def __exit__(self, *exc):
        if self.zip is not None:
            self.zip.close()

    def open(self, member: str | None):
        if member is None:
            counting = _Counting(open(self.path, "rb", buffering=0))
            return io.BufferedReader(counting, READ_SIZE), counting
        capped = open_member(self.zip, member, self.limits)
        return io.BufferedReader(capped, READ_SIZE), capped


def _select(info: zipfile.ZipInfo, shown: str):
    """DIGIT's members: archiver metadata is skipped, anything but JSON / NDJSON refused."""
    base = info.orig_filename.rsplit("/", 1)[-1]
    if info.orig_filename.startswith("__MACOSX/") or base.startswith("."):
        return SKIP  # archiver metadata, not data
    if not base.lower().endswith(MEMBER_SUFFIXES):
        return f"entry {shown} is not a .json, .ndjson or .jsonl file"
    return None


def check_archive(zf: zipfile.ZipFile, limits: Limits) -> list[str]:
    """Refuse the whole archive on any unsafe entry (workers/archive.py; names are never "cleaned");
    returns the members to read, in archive order."""
    return archive.check_archive(zf, limits, _select)


# --- format detection --------------------------------------------------------------------------------

def _detect(stream, member: str | None) -> str:
    """'ndjson' or 'json', from the first bytes and the first object's keys (read as a stream: a JSON
    document on one long line is never loaded whole); raises for something that is neither."""
    where = "the file" if member is None else f"member {member!r}"
    if member is not None and stream.peek(4)[:4] in ZIP_MAGIC:
        raise JobFailed("archive_rejected", f"{where} is itself an archive; nested archives are not accepted")
    while True:
        chunk = stream.peek(READ_SIZE)
        if not chunk:
            raise JobFailed("invalid_format", f"{where} is empty")
        stripped = chunk.lstrip(b" \t\r\n")
        stream.read(len(chunk) - len(stripped))
        if stripped:
            break
    if stripped[:1] not in (b"{", b"["):
        raise JobFailed("invalid_format", f"{where} is not JSON, NDJSON or a ZIP archive of them")
    if member is not None and member.lower().endswith((".ndjson", ".jsonl")):
        return "ndjson"
    keys = set()
    try:
        # use_float: without it the C backend crashes the process on an integer beyond 64 bits
        for prefix, event, value in ijson.parse(stream, multiple_values=True, use_float=True):
            if prefix != "":
                continue
            if event == "map_key":
                if value == "entities":
                    return "json"
                keys.add(value)
            elif event != "start_map":
                break  # the first value ended (or is not an object)
    except ijson.JSONError:
        pass  # the scan reports it properly
    return "ndjson" if {"schema", "data"} <= keys else "json"


# --- scanning ----------------------------------------------------------------------------------------

def _json_error(exc: Exception, where: str, offset: int) -> JobFailed:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    first = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    if "premature EOF" in first:
        return JobFailed("truncated_file", f"{where} ends in the middle of the JSON document "
                                               f"(after {offset} bytes); was the upload cut off?")
    if "UTF8" in first or "UTF-8" in first:
        return JobFailed("invalid_utf8", f"{where} is not valid UTF-8 (near byte {offset})")
    return JobFailed("invalid_json", f"{where} is not valid JSON near byte {offset}: {first}")


def _scan_json(stream, counter, where: str, tick: Tick) -> list[list]:
    schemas: dict[str, int] = {}
    saw_entities = False
    array_prefix = item_prefix = None
    current = None
    seen = 0
    try:
        for prefix, event, value in ijson.parse(stream, use_float=True):
            if prefix == item_prefix:
                if event in VALUE_EVENTS:
                    schemas[current] += 1
                    seen += 1
                    if seen % 20_000 == 0:
                        tick()
            elif prefix == "entities":
                if event == "map_key":
                    current = value
                    schemas.setdefault(current, 0)
                    array_prefix = "entities." + value
                    item_prefix = array_prefix + ".item"
                elif event == "start_map":
                    saw_entities = True
                elif event != "end_map":
                    raise JobFailed("invalid_format", f"{where}: \"entities\" must be an object of "
                                                          "schema name to list of entities")
            elif prefix == array_prefix:
                if event not in ("start_array", "end_array"):
                    raise JobFailed("invalid_format", f"{where}: entities.{current} must be a list")
            elif prefix == "" and event not in ("start_map", "end_map", "map_key"):
                raise JobFailed("invalid_format", f"{where} must be a JSON object with an \"entities\" key")
    except ijson.JSONError as exc:
        raise _json_error(exc, where, counter.count) from None
    if not saw_entities:
        raise JobFailed("invalid_format", f"{where} has no \"entities\" object")
    return [[name, count] for name, count in schemas.items()]


def _lines(stream, where: str, limit: int):
    """(line number, stripped line, ends with newline) for each non-blank line."""
    number = 0
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        number += 1
        ended = line.endswith(b"\n")
        if len(line) > limit and not ended:
            raise JobFailed("invalid_format", f"{where}: line {number} is longer than {limit} bytes")
        stripped = line.strip()
        if stripped:
            yield number, stripped, ended


def _line_error(line: bytes, number: int, ended: bool, where: str, exc: Exception) -> JobFailed:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return JobFailed("invalid_utf8", f"{where}: line {number} is not valid UTF-8")
    if not ended:
        return JobFailed("truncated_file", f"{where}: the last line ({number}) is cut off; "
                                               "was the upload interrupted?")
    return JobFailed("invalid_json", f"{where}: line {number} is not valid JSON ({exc})")


def _load_line(line: bytes, number: int, ended: bool, where: str):
    """One NDJSON line's value. A line the fast parser refuses is read again by the safe one, so a value
    that only its entity cannot hold (a lone surrogate, a huge number) rejects that entity, not the file."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        first = exc
    try:
        return safe_loads(line)
    except JsonError as exc:
        if exc.kind == "too_deep":
            return Unreadable("TOO_DEEP", "the line is nested too deeply to be read")
    raise _line_error(line, number, ended, where, first) from None


def _scan_ndjson(stream, where: str, limits: Limits, tick: Tick) -> int:
    count = 0
    for number, line, ended in _lines(stream, where, limits.max_line_bytes):
        _load_line(line, number, ended, where)
        count += 1
        if count % 20_000 == 0:
            tick()
    return count


def _scan_json_part(source, member, where: str, tick: Tick) -> dict:
    """Stream the document; one the streaming parser cannot read exactly (a lone surrogate escape, a
    number beyond 64 bits) is read whole by the safe parser, up to WHOLE_READ_MAX bytes."""
    stream, _ = source.open(member)
    with stream:
        lone = has_lone_surrogate_escape(stream)
    failure = None
    if not lone:
        stream, counter = source.open(member)
        with stream:
            try:
                schemas = _scan_json(stream, counter, where, tick)
                return {"member": member, "format": "json", "schemas": schemas, "count": sum(c for _, c in schemas)}
            except JobFailed as exc:
                if exc.code != "invalid_json":
                    raise
                failure = exc
    document = _load_whole(source, member, where, failure)
    schemas = [[name, len(items)] for name, items in document.items()]
    return {"member": member, "format": "json", "whole": True, "schemas": schemas,
            "count": sum(c for _, c in schemas)}


def _load_whole(source, member, where: str, failure: JobFailed | None) -> dict:
    """{schema: [entity, …]} of a JSON document read whole by the safe parser."""
    stream, _ = source.open(member)
    with stream:
        raw = stream.read(WHOLE_READ_MAX + 1)
    if len(raw) > WHOLE_READ_MAX:
        raise failure or JobFailed("invalid_json", f"{where} holds a value the streaming reader cannot read "
                                                   f"exactly, and is over {WHOLE_READ_MAX} bytes to read whole")
    try:
        document = safe_loads(raw)
    except JsonError as exc:
        raise failure or JobFailed("invalid_json", f"{where} is not valid JSON: {exc.message}") from None
    entities_ = document.get("entities") if isinstance(document, dict) else None
    if not isinstance(entities_, dict):
        raise JobFailed("invalid_format", f"{where} has no \"entities\" object")
    for name, items in entities_.items():
        if not isinstance(items, list):
            raise JobFailed("invalid_format", f"{where}: entities.{name} must be a list")
    return entities_


def scan(path, limits: Limits = Limits(), tick: Tick = _noop) -> dict:
    """Check the whole file and describe it: {"archive": bool, "parts": [{member, format, count,
    schemas}], "total"}. Raises JobFailed (the file cannot be processed at all) with a reason a person can act on."""
    parts = []
    with _Source(path, limits) as source:
        members = check_archive(source.zip, limits) if source.zip is not None else [None]
        for member in members:
            where = "the file" if member is None else f"member {member!r}"
            stream, counter = source.open(member)
            with stream:
                fmt = _detect(stream, member)
            if fmt == "json":
                parts.append(_scan_json_part(source, member, where, tick))
                tick()
                continue
            stream, _ = source.open(member)
            with stream:
                count = _scan_ndjson(stream, where, limits, tick)
                parts.append({"member": member, "format": "ndjson", "schemas": None, "count": count})
            tick()
    return {"archive": members != [None], "parts": parts, "total": sum(p["count"] for p in parts)}


# --- reading -----------------------------------------------------------------------------------------

def entities(path, layout: dict, *, start: int = 0, limits: Limits = Limits()) -> Iterator[tuple[int, str | None, object]]:
    """Yield (position, schema, entity) from `start` on. For an NDJSON line that is not
    {"schema", "data"}, schema is None and the entity is the whole line's value."""
    base = 0
    with _Source(path, limits) as source:
        for part in layout["parts"]:
            if base + part["count"] <= start:
                base += part["count"]
                continue  # wholly done by an earlier delivery
            where = "the file" if part["member"] is None else f"member {part['member']!r}"
            if part["format"] == "ndjson":
                yield from _read_ndjson(source, part, base, start, where, limits)
            elif part.get("whole"):
                yield from _read_whole(source, part, base, start, where)
            else:
                resume = start
                try:
                    for item in _read_json(source, part, base, start, where):
                        resume = item[0] + 1
                        yield item
                except _TooDeepToStream:  # the rest of this part, read whole by the safe parser
                    yield from _read_whole(source, part, base, resume, where)
            base += part["count"]


def _read_ndjson(source, part, base, start, where, limits):
    stream, _ = source.open(part["member"])
    with stream:
        position = base
        for number, line, ended in _lines(stream, where, limits.max_line_bytes):
            if position >= start:
                value = _load_line(line, number, ended, where)
                if isinstance(value, Unreadable):
                    yield position, None, value
                elif isinstance(value, dict) and isinstance(value.get("schema"), str) and "data" in value:
                    yield position, value["schema"], value["data"]
                else:
                    yield position, None, value
            position += 1


class _TooDeepToStream(Exception):
    pass


def _read_whole(source, part, base, start, where):
    document = _load_whole(source, part["member"], where, None)
    offset = base
    for schema, count in part["schemas"]:
        items = document.get(schema) or []
        for index in range(max(0, start - offset), min(count, len(items))):
            yield offset + index, schema, items[index]
        offset += count


def _read_json(source, part, base, start, where):
    offset = base
    for schema, count in part["schemas"]:
        if offset + count <= start or count == 0:
            offset += count
            continue
        stream, counter = source.open(part["member"])
        with stream:
            try:
                for index, entity in enumerate(ijson.items(stream, f"entities.{schema}.item", use_float=True)):
                    position = offset + index
                    if position >= start:
                        yield position, schema, entity
            except ijson.JSONError as exc:
                raise _json_error(exc, where, counter.count) from None
            except RecursionError:  # an entity nested past the streaming parser's limit
                raise _TooDeepToStream() from None
        offset += count

