"""Checking a DIGIT entity against its campaign form: each element names a field (`key`, dotted for
nested objects), a `dataType`, and `validations` such as required, min/max (a length for text, a value for
numbers), minLength/maxLength, minValue/maxValue, pattern and allowed values. A form is compiled once into
a list of small checks, so a million entities cost one pass each.

Forms come from field tooling, so names are matched leniently (case and `_`/`-` ignored). A validation the
server does not understand is refused when the form is published (`form_problems`); an unknown data type
is only not type-checked."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Callable

from models.digit.store import publish_form

MAX_MESSAGES = 5

_MISSING = object()
# isinstance() with a tuple: a `str | int` union is built anew on every call, twenty times slower.
_NUMBER = (int, float)
_SIZED = (str, list)
_PLAIN = (str, int, float, bool, type(None))

TEXT_TYPES = {"text", "string", "str", "textarea", "email", "phone", "mobile", "dropdown", "select", "radio",
              "uuid", "id"}
INTEGER_TYPES = {"integer", "int", "long"}
NUMBER_TYPES = {"number", "numeric", "decimal", "double", "float"}
BOOLEAN_TYPES = {"boolean", "bool", "checkbox"}
DATE_TYPES = {"date"}
DATETIME_TYPES = {"datetime", "timestamp", "time"}
OBJECT_TYPES = {"object", "map"}
ARRAY_TYPES = {"array", "list", "multiselect"}


@dataclass(frozen=True)
class FieldError:
    path: str
    code: str
    message: str


def _norm(name: Any) -> str:
    return str(name or "").replace("_", "").replace("-", "").lower()


def _get(entity: dict, path: list[str]):
    value: Any = entity
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(attr) -> float | None:
    if isinstance(attr, bool):
        return None
    if isinstance(attr, _NUMBER):
        return attr
    try:
        return float(str(attr).strip())
    except ValueError:
        return None


def _is_true(attr) -> bool:
    return attr is None or attr is True or str(attr).strip().lower() in {"true", "1", "yes"}


def _type_check(data_type: str) -> Callable[[Any], str | None] | None:
    """A function answering None when the value fits the type, else a short reason."""
    t = _norm(data_type)
    if t in TEXT_TYPES:
        return lambda v: None if isinstance(v, str) else "must be text"
    if t in INTEGER_TYPES:
        return lambda v: None if isinstance(v, int) and not isinstance(v, bool) else "must be an integer"
    if t in NUMBER_TYPES:
        return lambda v: None if isinstance(v, _NUMBER) and not isinstance(v, bool) else "must be a number"
    if t in BOOLEAN_TYPES:
        return lambda v: None if isinstance(v, bool) else "must be true or false"
    if t in DATE_TYPES:
        return _check_date
    if t in DATETIME_TYPES:
        return _check_datetime
    if t in OBJECT_TYPES:
        return lambda v: None if isinstance(v, dict) else "must be an object"
    if t in ARRAY_TYPES:
        return lambda v: None if isinstance(v, list) else "must be a list"
    return None


def _check_date(value) -> str | None:
    # DIGIT sends dates as ISO text or as epoch milliseconds.
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, str):
        for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
            try:
                dt.datetime.strptime(value, fmt)
                return None
            except ValueError:
                pass
    return "must be a date (YYYY-MM-DD or epoch milliseconds)"


def _check_datetime(value) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None
        except ValueError:
            pass
    return "must be a date-time (ISO 8601 or epoch milliseconds)"


def _is_text_type(data_type: str) -> bool:
    return _norm(data_type) in TEXT_TYPES or _norm(data_type) == ""


def _compile_validation(name: str, attr, data_type: str) -> tuple[str, Callable[[Any], str | None]] | None:
    """(error code, check) for one validation; None when the validation is unknown or unusable."""
    n = _norm(name)
    textual = _is_text_type(data_type)
    if n in {"max", "min"}:
        n = (n + "length") if textual else (n + "value")
    if n in {"maxlength", "minlength"}:
        limit = _number(attr)
        if limit is None:
            return None
        if n == "maxlength":
            return "TOO_LONG", lambda v: (f"longer than {limit:g} characters"
                                          if isinstance(v, _SIZED) and len(v) > limit else None)
        return "TOO_SHORT", lambda v: (f"shorter than {limit:g} characters"
                                       if isinstance(v, _SIZED) and len(v) < limit else None)
    if n in {"maxvalue", "minvalue"}:
        limit = _number(attr)
        if limit is None:
            return None

        def numeric(v):
            return isinstance(v, _NUMBER) and not isinstance(v, bool)
        if n == "maxvalue":
            return "TOO_LARGE", lambda v: f"greater than {limit:g}" if numeric(v) and v > limit else None
        return "TOO_SMALL", lambda v: f"less than {limit:g}" if numeric(v) and v < limit else None
    if n in {"pattern", "regex", "regexp"}:
        try:
            compiled = re.compile(str(attr))
        except re.error:
            return None
        return "PATTERN_MISMATCH", lambda v: (f"does not match the pattern {compiled.pattern}"
                                              if isinstance(v, str) and compiled.fullmatch(v) is None else None)
    if n in {"allowedvalues", "oneof", "in", "enum", "options", "values"}:
        allowed = attr if isinstance(attr, list) else [a.strip() for a in str(attr).split(",")]
        allowed_set = {_hashable(a) for a in allowed}
        shown = ", ".join(str(a) for a in allowed[:10])
        return "NOT_ALLOWED", lambda v: None if _hashable(v) in allowed_set else f"must be one of {shown}"
    return None


def _hashable(value):
    return value if isinstance(value, _PLAIN) else repr(value)


class FormValidator:
    """Checks compiled from one form's elements."""

    def __init__(self, form: dict):
        self.schema = form.get("schema")
        self.version = form.get("version")
        # (key, its first part, the parts after it, required, type check, other checks)
        self._fields: list[tuple[str, str, list[str], bool, Callable | None, list]] = []
        for element in form.get("elements") or []:
            if not isinstance(element, dict) or not element.get("key"):
                continue
            key = str(element["key"])
            data_type = str(element.get("dataType") or "")
            required = False
            checks = []
            for validation in element.get("validations") or []:
                if not isinstance(validation, dict):
                    continue
                name = validation.get("name")
                if _norm(name) in REQUIRED_NAMES:
                    required = _is_true(validation.get("attribute", True))
                    continue
                compiled = _compile_validation(name, validation.get("attribute"), data_type)
                if compiled is not None:
                    checks.append(compiled)
            first, *rest = key.split(".")
            self._fields.append((key, first, rest, required, _type_check(data_type), checks))

    def errors(self, entity: dict) -> list[FieldError]:
        found: list[FieldError] = []
        for key, first, rest, required, type_check, checks in self._fields:
            value = entity.get(first, _MISSING)
            if rest and value is not _MISSING:
                value = _get(value, rest)
            if value is _MISSING or value is None:
                if required:
                    found.append(FieldError(key, "REQUIRED", "is required"))
                continue
            if type_check is not None:
                reason = type_check(value)
                if reason is not None:
                    found.append(FieldError(key, "INVALID_TYPE", reason))
                    continue  # the other checks assume the type
            for code, check in checks:
                reason = check(value)
                if reason is not None:
                    found.append(FieldError(key, code, reason))
        return found


def summarise(errors: list[FieldError]) -> str:
    text = "; ".join(f"{e.path}: {e.message}" for e in errors[:MAX_MESSAGES])
    if len(errors) > MAX_MESSAGES:
        text += f"; and {len(errors) - MAX_MESSAGES} more"
    return text


def normalise_form(body: dict) -> dict:
    """The stored shape of a published form: `version` as an integer and numeric validation attributes as
    numbers (the seed's example types), whatever the publisher sent."""
    form = dict(body)
    form["version"] = int(str(form["version"]).strip())
    elements = []
    for element in form.get("elements") or []:
        element = dict(element)
        validations = []
        for validation in element.get("validations") or []:
            validation = dict(validation)
            attr = validation.get("attribute")
            if isinstance(attr, str) and _norm(validation.get("name")) in {
                    "max", "min", "maxlength", "minlength", "maxvalue", "minvalue"}:
                number = _number(attr)
                if number is not None:
                    validation["attribute"] = int(number) if float(number).is_integer() else number
            validations.append(validation)
        element["validations"] = validations
        elements.append(element)
    form["elements"] = elements
    return form


def form_problems(body) -> list[str]:
    """What is wrong with a form someone wants to publish (empty when it is fine)."""
    if not isinstance(body, dict):
        return ["the form must be a JSON object"]
    problems = []
    for name in ("campaignId", "tenantId", "schema"):
        if not isinstance(body.get(name), str) or not body.get(name).strip():
            problems.append(f"{name} is required (text)")
    version = body.get("version")
    if isinstance(version, bool) or not (isinstance(version, int) or (isinstance(version, str) and version.strip().isdigit())):
        problems.append("version is required (a positive integer, or its text)")
    elif int(str(version).strip()) < 1:
        problems.append("version must be at least 1")
    elements = body.get("elements")
    if not isinstance(elements, list):
        problems.append("elements must be a list")
    else:
        for i, element in enumerate(elements):
            if not isinstance(element, dict) or not isinstance(element.get("key"), str) or not element["key"]:
                problems.append(f"elements[{i}].key is required (text)")
                continue
            validations = element.get("validations", [])
            if validations is not None and not isinstance(validations, list):
                problems.append(f"elements[{i}].validations must be a list")
                continue
            data_type = str(element.get("dataType") or "")
            for j, validation in enumerate(validations or []):
                where = f"elements[{i}] ({element['key']}).validations[{j}]"
                if not isinstance(validation, dict) or not isinstance(validation.get("name"), str):
                    problems.append(f"{where}.name is required (text)")
                    continue
                problem = _validation_problem(validation, data_type)
                if problem:
                    problems.append(f"{where} {validation['name']!r}: {problem}")
    return problems


REQUIRED_NAMES = {"required", "mandatory", "notnull"}


def _validation_problem(validation: dict, data_type: str) -> str | None:
    """Why a validation would be ignored when entities are checked (None when it will be applied), so a
    form is refused at publish time rather than silently checking less than it says."""
    name = validation["name"]
    if _norm(name) in REQUIRED_NAMES:
        return None
    if "attribute" not in validation:
        hint = f" (found {', '.join(sorted(set(validation) - {'name', 'message', 'errorMessage'}))})" \
            if set(validation) - {"name", "message", "errorMessage"} else ""
        return f"the rule's value goes in 'attribute'{hint}"
    if _norm(name) in {"pattern", "regex", "regexp"}:
        try:
            re.compile(str(validation.get("attribute")))
        except re.error as exc:
            return f"invalid pattern ({exc})"
    if _compile_validation(name, validation.get("attribute"), data_type) is None:
        known = "required, min, max, minLength, maxLength, minValue, maxValue, pattern, allowedValues"
        return f"not a validation this server applies with attribute {validation.get('attribute')!r} (known: {known})"
    return None


class FormRejected(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("the form is not valid: " + "; ".join(problems))
        self.problems = problems


def publish(session, body, created_by: str | None):
    """Check and store one form version (the admin API and the CLI both publish through this).
    Raises FormRejected, or models.digit.store.VersionNotNewer."""
    problems = form_problems(body)
    if problems:
        raise FormRejected(problems)
    return publish_form(session, normalise_form(body), created_by=created_by)
