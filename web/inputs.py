"""Text and numbers a request may carry into PostgreSQL, checked in one place.

PostgreSQL text cannot hold a NUL character, UTF-8 cannot hold a lone surrogate (what a JSON
`"\\ud800"` escape decodes to), an index cannot hold an arbitrarily long key, and a bigint holds at
most 2^63 - 1. A view passes every request field that reaches SQL through `clean_text`
or `bounded_int`; a refusal is a BadRequest that each dialect's renderer turns into its own envelope."""
from __future__ import annotations

from flask import request

from web.errors import BadRequest
from workers.jsonsafe import find_unstorable

INT64_MAX = 2 ** 63 - 1
INT32_MAX = 2 ** 31 - 1
DEFAULT_MAX_TEXT = 256


class InvalidInput(BadRequest):
    """A refused request field. `reason` says why: required, type, too_long, nul, surrogate, range."""

    def __init__(self, message: str, *, reason: str, field: str, code: str = "bad_request"):
        super().__init__(message, code=code)
        self.reason = reason
        self.field = field


def text_problem(value: str, max_length: int) -> tuple[str, str] | None:
    """(reason, message) when `value` cannot be stored as text of at most `max_length` characters."""
    if len(value) > max_length:
        return "too_long", f"is longer than {max_length} characters"
    if "\x00" in value:
        return "nul", "contains a NUL (\\u0000) character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate", "contains a lone surrogate (not valid Unicode text)"
    return None


def is_clean_text(value, max_length: int = DEFAULT_MAX_TEXT) -> bool:
    return isinstance(value, str) and text_problem(value, max_length) is None


def clean_text(value, field: str, max_length: int = DEFAULT_MAX_TEXT, *, required: bool = True,
               strip: bool = False, code: str = "bad_request") -> str | None:
    """`value` as text a request may store or look up: a string of at most `max_length` characters
    with no NUL and no lone surrogate. None or blank is refused when `required`, else returns None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{field} is required", reason="required", field=field, code=code)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", reason="type", field=field, code=code)
    problem = text_problem(value, max_length)
    if problem is not None:
        reason, message = problem
        raise InvalidInput(f"{field} {message}", reason=reason, field=field, code=code)
    return value.strip() if strip else value


def query_text(name: str, max_length: int = DEFAULT_MAX_TEXT, *, required: bool = False, strip: bool = False,
               code: str = "bad_request") -> str | None:
    """clean_text() of the query parameter `name` (None when absent and not required)."""
    return clean_text(request.args.get(name), name, max_length, required=required, strip=strip, code=code)


def bounded_int(value, field: str, *, minimum: int = 0, maximum: int = INT64_MAX,
                code: str = "bad_request") -> int:
    """`value` as an integer in [minimum, maximum] (a JSON integer, not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be an integer", reason="type", field=field, code=code)
    if value < minimum or value > maximum:
        raise InvalidInput(f"{field} must be between {minimum} and {maximum}", reason="range", field=field,
                           code=code)
    return value


_REASONS = {"nul_character": "nul", "lone_surrogate": "surrogate", "string_too_long": "too_long",
            "key_too_long": "too_long", "too_deep": "too_deep", "invalid_number": "number",
            "number_too_large": "number"}


def json_problem(value, *, max_string: int, max_depth: int = 64, path: str = "") -> tuple[str, str, str] | None:
    """The first thing in a JSON value a request may not store as it is, as (reason, message, path), or
    None: the engine's own check (workers.jsonsafe.find_unstorable), with keys held to `max_string` too
    and its codes as this module's reasons."""
    problem = find_unstorable(value, max_string=max_string, max_depth=max_depth, max_key=max_string, path=path)
    if problem is None:
        return None
    code, message, where = problem
    return _REASONS.get(code, "type"), message, where
