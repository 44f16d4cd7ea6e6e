"""Safe JSON parsing shared by the web front and the workers: NaN/Infinity become BadConstant markers
(so the record holding one is rejected, not the whole batch), invalid UTF-8 and bracket bombs become
JsonError instead of crashes, numbers beyond a double become BigNumber markers, and a walker finds
values PostgreSQL's jsonb cannot store (the one check every dialect runs on each record before a write)."""
from __future__ import annotations

import json
import math
import re

import orjson


class JsonError(ValueError):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "malformed" | "too_deep"
        self.message = message


MAX_DEPTH = 64            # deepest nesting a stored record may have
MAX_KEY = 1024            # longest key of a JSON object, in characters
MAX_NUMBER_DIGITS = 400   # an integer with more digits is beyond a double's range anyway
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 64 - 1   # what the fast parser and the engine's writer keep exactly


class BadConstant:
    """Stands in for NaN / Infinity / -Infinity, which JSON does not allow."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class BigNumber(BadConstant):
    """Stands in for a number beyond what a double holds (a 5,000-digit integer, 1e400)."""
    __slots__ = ()


def loads(raw: bytes | str):
    return loads_checked(raw)[0]


def loads_checked(raw: bytes | str):
    """(value, clean): clean is True when the fast strict parser accepted the document, so it holds no
    NaN/Infinity markers. Anything it refuses is parsed again slowly to find out why (or to keep NaN as
    a marker, since that is a bad record rather than a bad document)."""
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError:
        pass
    return _slow_loads(raw), False


def _slow_loads(raw: bytes | str):
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError("malformed", f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(raw, parse_constant=BadConstant, parse_int=_parse_int, parse_float=_parse_float)
    except RecursionError:
        # The C scanner stops at the interpreter's recursion limit: a bomb of brackets is an error.
        raise JsonError("too_deep", "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise JsonError("malformed", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:
        raise JsonError("malformed", "malformed JSON") from None


def _parse_int(text: str):
    # Read as the fast parser does: 64-bit integers exactly, longer ones as doubles; a number beyond what
    # a double holds is a marker (so only its record is rejected). The length test comes first, so a
    # 5,000-digit integer never reaches int() (which refuses more than 4,300 digits).
    if len(text) <= 20:
        value = int(text)
        if INT_MIN <= value <= INT_MAX:
            return value
    if len(text) <= MAX_NUMBER_DIGITS:
        value = float(text)
        if math.isfinite(value):
            return value
    return BigNumber(text)


def _parse_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else BigNumber(text)


# A lone UTF-16 surrogate escape in JSON text: a high one not followed by a low one, or a low one alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
                                    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def has_lone_surrogate_escape(stream, block_size: int = 1 << 16) -> bool:
    """True when the JSON text read from `stream` holds a lone surrogate escape such as "\\ud800" (a
    streaming parser reads one as "?"; the safe parser keeps it, for the record's check to refuse).
    Reads in blocks with an overlap, so an escape cut by a block boundary is still seen. An escaped
    backslash before "u" can make a false alarm, never a miss."""
    tail, base, judged = b"", 0, 0  # base: offset of the window in the stream; starts before judged are done
    while True:
        block = stream.read(block_size)
        window = tail + block
        last = not block
        for candidate in _SURROGATE_ESCAPE.finditer(window):  # cheap to find; then judged exactly
            start = candidate.start()
            if base + start < judged:
                continue
            if not last and start > len(window) - 12:
                break  # what follows it is in the next block
            if _LONE_SURROGATE_ESCAPE.match(window, start):
                return True
        if last:
            return False
        judged = base + len(window) - 11
        tail = window[-18:]  # keeps 6 bytes before every escape still to judge, for the look-behind
        base += len(window) - len(tail)


def has_surrogate(text: str) -> bool:
    """True when `text` holds a lone UTF-16 surrogate (e.g. from a "\\ud800" escape), which UTF-8, and
    so PostgreSQL, cannot store."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_bad_text(value: str, *, max_bytes: int) -> tuple[str, str] | None:
    """What stops `value` from going into an indexed text column, as (code, message), or None: a NUL, a
    lone surrogate, or more than `max_bytes` bytes of UTF-8 (a b-tree entry must fit a third of a page)."""
    if "\x00" in value:
        return "nul_character", "contains a NUL (\\u0000) character"
    if has_surrogate(value):
        return "lone_surrogate", "contains a lone UTF-16 surrogate (not valid Unicode)"
    if len(value) > max_bytes // 4 and len(value.encode("utf-8")) > max_bytes:
        return "text_too_long", f"longer than {max_bytes} bytes"
    return None


def _number_problem(value) -> tuple[str, str] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            return "number_too_large", "an integer beyond 64 bits cannot be stored exactly"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "number_too_large", "a number beyond the range of a double (1.8e308)"
    return None


def find_unstorable(value, *, max_string: int, max_depth: int = MAX_DEPTH, max_key: int = MAX_KEY,
                    path: str = "") -> tuple[str, str, str] | None:
    """First problem that would stop jsonb from storing `value` exactly, as (code, message, path), or None:
    - `invalid_number`: NaN/Infinity;
    - `number_too_large`: a number beyond a double's range (a 5,000-digit integer, 1e400) or an integer
      beyond 64 bits held exactly;
    - `nul_character`: a NUL (\\u0000) in a string or key (jsonb refuses it);
    - `lone_surrogate`: a lone UTF-16 surrogate in a string or key (not valid Unicode);
    - `string_too_long` / `key_too_long`: a string over `max_string` or a key over `max_key` characters;
    - `too_deep`: nesting deeper than `max_depth` levels.
    Walks without recursion, so a bracket bomb cannot overflow the stack."""
    stack = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > max_depth:
            return "too_deep", f"nested deeper than {max_depth} levels", where
        if isinstance(node, str):
            problem = _string_problem(node, max_string)
            if problem is not None:
                return (*problem, where)
        elif isinstance(node, dict):
            for key, child in node.items():
                if not isinstance(key, str):
                    continue
                problem = _string_problem(key, max_key, "a key")
                if problem is not None:
                    code, message = problem
                    return ("key_too_long" if code == "string_too_long" else code), message, where
                if isinstance(child, (int, float)) and not isinstance(child, BadConstant):
                    problem = _number_problem(child)
                    if problem is not None:
                        return (*problem, f"{where}.{key}" if where else key)
                elif child is not None:
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                stack.append((child, f"{where}[{index}]", depth + 1))
        elif isinstance(node, BigNumber):
            return "number_too_large", "a number beyond the range of a double (1.8e308)", where
        elif isinstance(node, BadConstant):
            return "invalid_number", f"{node.text} is not a valid JSON number", where
        elif isinstance(node, (int, float)):
            problem = _number_problem(node)
            if problem is not None:
                return (*problem, where)
    return None


def storable_json(value, *, max_string: int, max_depth: int = MAX_DEPTH, max_key: int = MAX_KEY) -> str | None:
    """`value` as JSON text with sorted keys (as the engine stores it) when that text proves
    `find_unstorable` would find nothing; None means "walk it to find out". orjson refuses a lone
    surrogate, an integer beyond 64 bits, nesting past 255 and anything but plain JSON (a NaN or number
    marker), writes a NUL as the escape \\u0000 and a non-finite float as null (so either sends the value
    to the walk, as does that text inside a string); no string or key is longer than the whole text, and
    nesting is at most the number of brackets."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if len(text) > max_string or b"null" in text or (b"\\" in text and b"\\u0000" in text):
        return None
    if text.count(b"{") + text.count(b"[") >= max_depth:
        return None
    if len(text) > max_key and not _keys_within(value, max_key):
        return None
    return text.decode()


def _keys_within(value, max_key: int) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(len(key) > max_key for key in node):
                return False
            node = node.values()
        stack.extend(child for child in node if isinstance(child, (dict, list)))
    return True


def _string_problem(text: str, limit: int, what: str = "text") -> tuple[str, str] | None:
    if "\x00" in text:
        return "nul_character", f"{what} contains a NUL (\\u0000) character"
    if has_surrogate(text):
        return "lone_surrogate", f"{what} contains a lone UTF-16 surrogate (not valid Unicode)"
    if len(text) > limit:
        return "string_too_long", f"{what} longer than {limit} characters"
    return None


def clean_text(text: str) -> str:
    """`text` made storable in any text or jsonb column: NUL and lone surrogates become escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if has_surrogate(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable(value, *, max_depth: int = MAX_DEPTH):
    """A copy of `value` (the engine's own JSON: results, counts) that jsonb can always store: strings and
    keys cleaned, numbers out of range as text, NaN as text, anything deeper than `max_depth` as "…"."""
    def walk(node, depth):
        if isinstance(node, str):
            return clean_text(node)
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, (int, float)) and not isinstance(node, BadConstant):
            return str(node) if _number_problem(node) else node
        if depth >= max_depth:
            return "…"
        if isinstance(node, dict):
            return {clean_text(str(k)): walk(v, depth + 1) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v, depth + 1) for v in node]
        if isinstance(node, BadConstant):
            return node.text[:64]
        return clean_text(str(node))
    return walk(value, 0)


def as_text(value, cap: int = 8000) -> str:
    """A record as JSON text for an error report, whatever it holds (never raises), cut to `cap`."""
    try:
        text = orjson.dumps(value, default=repr).decode()
    except (TypeError, ValueError, RecursionError):
        try:
            text = orjson.dumps(storable(value)).decode()
        except (TypeError, ValueError, RecursionError):
            text = "<unprintable record>"
    return text[:cap]
