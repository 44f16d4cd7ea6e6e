"""Safe JSON parsing shared by the web front and the workers: NaN/Infinity become BadConstant markers
(so the record holding one is rejected, not the whole batch), invalid UTF-8 and bracket bombs become
JsonError instead of crashes, and a walker finds values PostgreSQL's jsonb cannot store."""
from __future__ import annotations

import json

import orjson


class JsonError(ValueError):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "malformed" | "too_deep"
        self.message = message


class BadConstant:
    """Stands in for NaN / Infinity / -Infinity, which JSON does not allow."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


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
        return json.loads(raw, parse_constant=BadConstant)
    except RecursionError:
        # The C scanner stops at the interpreter's recursion limit: a bomb of brackets is an error.
        raise JsonError("too_deep", "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise JsonError("malformed", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def find_unstorable(value, *, max_string: int, max_depth: int = 64, path: str = "") -> tuple[str, str, str] | None:
    """First problem that would stop jsonb from storing `value`, as (code, message, path), or None:
    NaN/Infinity, a NUL character, an oversize string, or nesting deeper than max_depth."""
    stack = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > max_depth:
            return "too_deep", f"nested deeper than {max_depth} levels", where
        if isinstance(node, str):
            if "\x00" in node:
                return "nul_character", "text contains a NUL (\\u0000) character", where
            if len(node) > max_string:
                return "string_too_long", f"text longer than {max_string} characters", where
        elif isinstance(node, dict):
            for key, child in node.items():
                if "\x00" in key:
                    return "nul_character", "a key contains a NUL (\\u0000) character", where
                if not isinstance(child, (int, float, bool)) or isinstance(child, BadConstant):
                    stack.append((child, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            for index, child in enumerate(node):
                stack.append((child, f"{where}[{index}]", depth + 1))
        elif isinstance(node, BadConstant):
            return "invalid_number", f"{node.text} is not a valid JSON number", where
    return None
