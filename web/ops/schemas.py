"""marshmallow schemas of fieldsync's own (non-dialect) API: they validate requests at the edge (a bad
value is a 400 naming the field, never a 500) and describe the answers in /openapi.json."""
from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from models.tables import JOB_STATUSES
from web.errors import BadRequest
from web.inputs import INT64_MAX, is_clean_text, text_problem

TEXT_MAX = 128


class CleanText(fields.String):
    """Text PostgreSQL can store (no NUL, no lone surrogate) and at most `max_length` characters."""

    def __init__(self, *args, max_length: int = TEXT_MAX, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(value, self.max_length)
        if problem is not None:
            raise ValidationError(problem[1])
        return value


FIELD_NAME_MAX = 64


def _shown_names(messages) -> list[str]:
    """The refused fields a message may name: short, storable text only (a client's key is never
    repeated at length or with a NUL in it)."""
    return sorted(k for k in messages if isinstance(k, str) and is_clean_text(k, FIELD_NAME_MAX))


def _flatten(value) -> list[str]:
    if isinstance(value, dict):
        return [f"{k}: {m}" for k, v in value.items() for m in _flatten(v)]
    if isinstance(value, list):
        return [m for v in value for m in _flatten(v)]
    return [str(value)]


class StrictInteger(fields.Integer):
    """A JSON integer: not a string of digits, not a float, not a boolean."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("must not be blank")


def load(schema: Schema, data, *, code: str = "bad_request", partial: bool = False) -> dict:
    """Validate `data` (a JSON body, a query string or a form) with `schema`; a 400 `invalid <fields>`
    with a `fields` map of what is wrong with each (never the values sent)."""
    try:
        return schema.load(data, partial=partial)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {}
        shown = _shown_names(messages)
        named = shown + ([f"{len(messages) - len(shown)} with a long or invalid name"]
                         if len(shown) < len(messages) else [])
        raise BadRequest("invalid " + ", ".join(named) if named else "invalid request", code=code,
                         fields={k: _flatten(messages[k])[:3] for k in shown}) from None


class _Strict(Schema):
    class Meta:
        unknown = EXCLUDE


# --- requests -----------------------------------------------------------------------------------------

class JobErrorsQuery(_Strict):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=-INT64_MAX - 1, max=INT64_MAX),
                           metadata={"description": "page size (clamped to 1..500)"})
    after = fields.Integer(load_default=-1, validate=validate.Range(min=-INT64_MAX - 1, max=INT64_MAX),
                           metadata={"description": "the `id` of the last error seen (from `next`)"})


class JobFilterQuery(_Strict):
    status = fields.String(load_default=None, validate=validate.OneOf(JOB_STATUSES))
    kind = CleanText(load_default=None, max_length=64)
    tenant = CleanText(load_default=None, metadata={"description": "a tenant and the tenants below it"})
    since = fields.AwareDateTime(load_default=None, default_timezone=None,
                                 metadata={"description": "created at or after (ISO 8601 with a zone)"})
    until = fields.AwareDateTime(load_default=None, metadata={"description": "created before"})
    before = fields.AwareDateTime(load_default=None, metadata={"description": "keyset: created before this"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class DeviceFilterQuery(_Strict):
    tenant = CleanText(load_default=None)
    dialect = CleanText(load_default=None, max_length=32)
    silent = fields.Boolean(load_default=False, metadata={"description": "only devices silent for more "
                                                                         "than OPS_SILENT_DAYS"})
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=200))


class LoginForm(_Strict):
    username = CleanText(required=True, validate=validate.Length(min=1))
    password = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    next = fields.String(load_default=None, validate=validate.Length(max=512))


class RetryForm(_Strict):
    attempts = fields.Integer(required=True, validate=validate.Range(min=0, max=2 ** 31 - 1),
                              metadata={"description": "the attempt count shown with the failure (makes a "
                                                       "repeated retry a no-op)"})


class CancelForm(_Strict):
    pass


# --- answers ------------------------------------------------------------------------------------------

class Progress(Schema):
    done = fields.Integer()
    total = fields.Integer(allow_none=True)
    percent = fields.Float(allow_none=True)


class JobErrorOut(Schema):
    position = fields.Integer()
    record_id = fields.String(allow_none=True)
    code = fields.String()
    message = fields.String()
    path = fields.String(allow_none=True)
    severity = fields.String(validate=validate.OneOf(("error", "warning")))


class JobError(Schema):
    code = fields.String()
    detail = fields.String()


class JobOut(Schema):
    id = fields.UUID()
    kind = fields.String()
    queue = fields.String()
    tenant = fields.String()
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    progress = fields.Nested(Progress)
    counts = fields.Dict()
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    error = fields.Nested(JobError, allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    created_by = fields.String(allow_none=True)
    first_errors = fields.List(fields.Nested(JobErrorOut))
    errors_url = fields.String()


class JobErrorsPage(Schema):
    job_id = fields.UUID()
    errors = fields.List(fields.Nested(JobErrorOut))
    has_more = fields.Boolean()
    next = fields.String()


class JobList(Schema):
    jobs = fields.List(fields.Nested(JobOut))
    next = fields.String(allow_none=True)


class WorkerOut(Schema):
    hostname = fields.String()
    alive = fields.Boolean()
    queues = fields.List(fields.String())
    processes = fields.Integer()
    jobs = fields.List(fields.Dict())
    last_beat = fields.Float(metadata={"description": "epoch seconds"})
    age = fields.Float(metadata={"description": "seconds since the last heartbeat"})


class QueueOut(Schema):
    queue = fields.String()
    queued = fields.Integer()
    running = fields.Integer()
    oldest_queued_at = fields.DateTime(allow_none=True)
    oldest_age_seconds = fields.Float(allow_none=True)
    broker_waiting = fields.Integer(allow_none=True)


class Overview(Schema):
    workers = fields.List(fields.Nested(WorkerOut))
    queues = fields.List(fields.Nested(QueueOut))
    running = fields.List(fields.Nested(JobOut))
    failures_24h = fields.Integer()
    recent_failures = fields.List(fields.Nested(JobOut))
    applied_per_minute = fields.List(fields.List(fields.Integer()))
    devices = fields.Dict()
    heartbeat_timeout_seconds = fields.Float()
    redis_ok = fields.Boolean(metadata={"description": "false: Redis was unreachable (workers and rates unknown)"})
    scope = fields.String(allow_none=True, metadata={"description": "the tenant subtree shown (null: all)"})
    generated_at = fields.DateTime()


class DeviceOut(Schema):
    tenant = fields.String()
    dialect = fields.String()
    client_id = fields.String()
    app_version = fields.String(allow_none=True)
    last_seen_at = fields.DateTime()
    last_push_at = fields.DateTime(allow_none=True)
    last_pull_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_error_at = fields.DateTime(allow_none=True)
    records_pushed = fields.Integer()
    pushes = fields.Integer()
    pulls = fields.Integer()
    silent = fields.Boolean()


class DeviceList(Schema):
    devices = fields.List(fields.Nested(DeviceOut))
    silent_days = fields.Integer()


class ActionOut(Schema):
    id = fields.UUID()
    status = fields.String()
    changed = fields.Boolean()


class Problem(Schema):
    error = fields.String()
    message = fields.String()


class Health(Schema):
    status = fields.String()
    timestamp = fields.String()
    version = fields.String()
    error = fields.String()
    failing = fields.List(fields.String())


# --- exports (web/exports.py): the request bodies, validated at the edge for their shape; the exporter's
# own parse (workers.exports.parse_spec) then checks what needs the deployment (namespaces, the target root)

class ExportSpecIn(Schema):
    class Meta:
        unknown = EXCLUDE
    namespace = CleanText(required=True, max_length=32, metadata={"description": "a served dialect's namespace"})
    record_types = fields.List(CleanText(max_length=256), allow_none=True, validate=validate.Length(max=1000))
    since_version = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=INT64_MAX))
    until = fields.Integer(allow_none=True, strict=True, validate=validate.Range(min=0, max=INT64_MAX),
                           metadata={"description": "the last version included (default: the current one)"})
    partition_by = fields.List(fields.String(validate=validate.OneOf(["record_type", "day"])), allow_none=True)
    tenant = CleanText(allow_none=True, metadata={"description": "a tenant the caller may act in"})


class ExportScheduleIn(Schema):
    class Meta:
        unknown = EXCLUDE
    name = CleanText(required=True)
    cron = CleanText(required=True, metadata={"description": "five-field cron, UTC"})
    spec = fields.Nested(ExportSpecIn, required=True)
    target = CleanText(required=True, max_length=4096,
                       metadata={"description": "a directory under EXPORT_TARGET_ROOT where each run lands"})
    retention = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000), load_default=7)


class ExportFileOut(Schema):
    path = fields.String()
    record_type = fields.String(allow_none=True)
    day = fields.String(allow_none=True)
    rows = fields.Integer()
    bytes = fields.Integer()
    sha256 = fields.String()
    url = fields.String(metadata={"description": "signed, expiring download link"})


class ExportOut(Schema):
    id = fields.UUID()
    kind = fields.String()
    tenant = fields.String()
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    progress = fields.Dict()
    spec = fields.Dict()
    schedule_id = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True)
    status_url = fields.String()
    files = fields.List(fields.Nested(ExportFileOut))
    manifest_url = fields.String()
    zip_url = fields.String()
    urls_expire_at = fields.DateTime()


class ExportList(Schema):
    exports = fields.List(fields.Nested(ExportOut))


class ExportScheduleOut(Schema):
    id = fields.UUID()
    name = fields.String()
    tenant = fields.String()
    cron = fields.String()
    spec = fields.Dict()
    target = fields.String()
    retention = fields.Integer()
    paused = fields.Boolean()
    next_run_at = fields.DateTime(allow_none=True)
    last_job_id = fields.String(allow_none=True)
    last_until_version = fields.Integer(allow_none=True)


class ExportScheduleList(Schema):
    schedules = fields.List(fields.Nested(ExportScheduleOut))


class ScheduleForm(_Strict):
    """Pause or resume a schedule from the console (the CSRF token travels in the same form)."""


class ConsoleRun(Schema):
    job_id = fields.UUID()
    status = fields.String(validate=validate.OneOf(JOB_STATUSES))
    finished_at = fields.DateTime(allow_none=True)
    error = fields.String(allow_none=True)


class ConsoleSchedule(ExportScheduleOut):
    last_run = fields.Nested(ConsoleRun, allow_none=True)


class ConsoleExports(Schema):
    schedules = fields.List(fields.Nested(ConsoleSchedule))
    exports = fields.List(fields.Dict(), metadata={"description": "the latest export jobs, newest first "
                                                                  "(as in the jobs list)"})


class ScheduleActionOut(Schema):
    id = fields.UUID()
    paused = fields.Boolean()
    next_run_at = fields.DateTime(allow_none=True)
    changed = fields.Boolean()
