"""The dialect adapter interface of the contract suite.

Every sync dialect fieldsync speaks must keep the same promises (a replay applies nothing twice, one bad
record never sinks its batch, errors come in the dialect's own envelope with the right status, another
tenant's ids answer like unknown ones, no 5xx leaks exception text). `tests/contract/test_contract.py`
states those promises once; an adapter translates them into one dialect's HTTP calls.

An adapter talks to the server only over HTTP, through `Env.client` (a Flask test client); when a
dialect has no read API for something the contract must check, it may read committed tables with plain
SQL through `Env.sql`. It never imports application modules.

A new dialect joins the suite by subclassing `DialectAdapter` in `adapters/<dialect>.py` and adding one
instance to `ADAPTERS` in `adapters/__init__.py`.
"""
from __future__ import annotations

import abc
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


# --- what the suite hands to an adapter -----------------------------------------------------------

@dataclass
class Env:
    """The server as the adapter sees it.

    - `client`: a Flask test client of the app under test. Every response it returns is already
      checked by the suite to be below 500 (contract item 9).
    - `admin_headers`: the `Authorization` header of a system admin (logged in over `POST /auth/login`),
      which may create users in any tenant (`POST /users/create` with `tenantId`).
    - `sql(query, params)`: runs a read-only SQL text and returns the rows (tuples). It sees what the
      app has written (committed data for a live app; the test transaction for a view-level app).
    - `live`: True when a real worker applies jobs (tests 1-2); False when nothing runs them.
    - `limits`: the caps the app was built with: {"max_body_bytes": …, "max_upload_bytes": …,
      "max_records_per_push": …}.
    """
    client: Any
    admin_headers: dict
    sql: Callable[[str, dict], list]
    live: bool
    limits: dict = field(default_factory=dict)


@dataclass
class Principal:
    """One caller: `headers` authenticate a request (a Bearer or Basic header, plus any header the
    dialect binds, e.g. mSupply's hardware id); `token` is the raw access token where the dialect sends
    it inside the body (DIGIT's requestInfo.authToken); `name` is the user or site name."""
    name: str
    headers: dict
    token: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Creds:
    """What `setup` returns: a writer and a read-only principal in tenant A, a writer in tenant B, and
    whatever else the dialect needs (`extra`: site ids, campaign ids, tenant admins…)."""
    tenant_a: str
    tenant_b: str
    writer: Principal
    reader: Principal
    other_writer: Principal
    extra: dict = field(default_factory=dict)


@dataclass
class Req:
    """One HTTP request to build now and send later: `kwargs` go to `client.open` (json=, data=,
    headers=, content_type=, query_string=). `label` names it in failure messages. `expect_status`
    overrides the status the test expects for this one request (None: the test's default)."""
    method: str
    path: str
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    expect_status: int | None = None

    def send(self, client):
        return client.open(self.path, method=self.method, **self.kwargs)

    def describe(self) -> str:
        return f"{self.label + ': ' if self.label else ''}{self.method} {self.path}"


@dataclass
class ForeignIdCase:
    """Tenant B asks for something of tenant A's (`foreign`) and for something that does not exist
    (`unknown`), the same way. Both must answer `status` (the adapter's not-found status unless given)
    with bodies equal once the ids are replaced by a placeholder: `ids` lists every id that may appear
    in either body (A's id, the unknown id)."""
    label: str
    foreign: Req
    unknown: Req
    ids: Sequence[str]
    status: int | None = None


@dataclass
class Reported:
    """One per-record error the dialect reported: the record's position in its batch (0-based) and the
    dialect's id for it (observation_id, RecordID, clientReferenceId…) when the report names one."""
    position: int
    record_id: str | None


@dataclass(frozen=True)
class Hostile:
    """One hostile value, in each form a request can carry it: `json` (the raw JSON text spliced into a
    body, so a `"\\ud800"` escape reaches the server as the client wrote it), `text` (a form field or
    header; None when it cannot be sent that way) and `query` (percent-encoded, for a query string or a
    path; None likewise)."""
    name: str
    json: bytes
    text: str | None = None
    query: str | None = None


LONG = 30_000  # longer than any field accepts, yet a body holding it stays below the suite's 32 KiB cap

HOSTILE = (
    Hostile("nul", b'"a\\u0000b"', "a\x00b", "a%00b"),
    Hostile("lone_surrogate", b'"a\\ud800b"', None, "a%ED%A0%80b"),
    Hostile("int64_overflow", str(2 ** 63).encode(), str(2 ** 63), str(2 ** 63)),
    Hostile("digits_5000", b"9" * 5000, "9" * 5000, "9" * 5000),
    Hostile("long_text", b'"' + b"x" * LONG + b'"', "x" * LONG, "x" * LONG),
    Hostile("object", b'{"a": [1, {"b": null}]}'),
    Hostile("array", b'[1, "two", null]'),
    Hostile("boolean", b"true"),
    Hostile("nan", b"NaN"),
    Hostile("deep_1000", b"[" * 1000 + b"]" * 1000),
)
HOSTILE_NAMES = tuple(h.name for h in HOSTILE)
TEXTUAL = ("nul", "lone_surrogate", "long_text", "digits_5000")  # bad as text (digits_5000: too long)


def all_but(*names: str) -> tuple[str, ...]:
    return tuple(n for n in HOSTILE_NAMES if n not in names)


HOLE = "\u2063hostile\u2063"  # where `splice` puts the hostile value in a body template


def splice(template, value: bytes) -> bytes:
    """`template` as JSON with the one string HOLE replaced by the raw JSON text `value`."""
    text = json.dumps(template).encode()
    marker = json.dumps(HOLE).encode()
    assert text.count(marker) == 1, "a template holds exactly one HOLE"
    return text.replace(marker, value)


@dataclass
class HostileTarget:
    """One place a request carries a value: `build(hostile)` is the request with the hostile value there
    (None when that value cannot be sent there, e.g. a lone surrogate in a header).

    `expect` says what the server must answer for the values in `only` (all of them by default):
    "refuse" a 4xx in the envelope; "keep" a 2xx (a value inside one record of a batch: the record is the
    pipeline's to reject, the batch is kept); any other value, and every value of "any", just below 500
    and, when an error, in the envelope. `envelope` is "dialect" or "fieldsync" (fieldsync's own APIs:
    {"error", "message"})."""
    label: str
    build: Callable[["Hostile"], Req | None]
    expect: str = "refuse"
    only: tuple[str, ...] = HOSTILE_NAMES
    envelope: str = "dialect"


def json_req(method: str, path: str, template, headers: dict | None = None, label: str = ""):
    """A builder: the request whose JSON body is `template` with the hostile value at HOLE."""
    def build(hostile: Hostile) -> Req:
        body = template() if callable(template) else template
        return Req(method, path, {"data": splice(body, hostile.json), "content_type": "application/json",
                                  "headers": dict(headers or {})}, label)
    return build


def texts_only(build):
    """A builder for a place only a string can go (an object's key): the other values are left out."""
    return lambda hostile: build(hostile) if hostile.json.startswith(b'"') else None


def query_req(method: str, path: str, name: str, headers: dict | None = None, params: str = "", json=None):
    """A builder: the request with the hostile value in the query parameter `name`."""
    def build(hostile: Hostile) -> Req | None:
        if hostile.query is None:
            return None
        query = (params + "&" if params else "") + f"{name}={hostile.query}"
        kwargs = {"headers": dict(headers or {})}
        if json is not None:
            kwargs["json"] = json
        return Req(method, f"{path}?{query}", kwargs)
    return build


def chunked(req: Req) -> Req:
    """`req` (with a JSON body) sent as a WSGI server hands over a chunked body: no Content-Length,
    the de-chunked bytes in wsgi.input and wsgi.input_terminated set (as gunicorn does)."""
    import io
    kwargs = dict(req.kwargs)
    if "json" in kwargs:
        body = json.dumps(kwargs.pop("json")).encode()
    else:
        body = kwargs.pop("data")
    kwargs["content_type"] = kwargs.get("content_type") or "application/json"
    kwargs["headers"] = {**kwargs.get("headers", {}), "Transfer-Encoding": "chunked"}
    kwargs["environ_overrides"] = {"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}
    return Req(req.method, req.path, kwargs, f"{req.label} (chunked)".strip(), req.expect_status)


def new_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def json_body(response) -> Any:
    """The response's JSON (None when the body is not JSON)."""
    try:
        return json.loads(response.get_data(as_text=True))
    except ValueError:
        return None


def make_user(env: Env, tenant: str, role: str, *, password: str = "contract-pw") -> Principal:
    """A user of `tenant` with `role`, created by the system admin over `POST /users/create` and logged
    in over `POST /auth/login`."""
    username = new_id(f"ct-{role[:2]}-")
    r = env.client.post("/users/create", headers=env.admin_headers,
                        json={"username": username, "password": password, "role": role, "tenantId": tenant})
    assert r.status_code == 201, show(r)
    r = env.client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, show(r)
    token = r.get_json()["token"]
    return Principal(name=username, headers={"Authorization": f"Bearer {token}"}, token=token,
                     extra={"password": password, "tenant": tenant, "role": role})


STUCK_HINT = ("a job still QUEUED usually means another worker took its message: is another test run using the "
              "same TEST_REDIS_URL?")


def show(response) -> str:
    """A response for an assertion message."""
    req = getattr(response, "request", None)
    where = f"{req.method} {req.path} -> " if req is not None else ""
    return f"{where}{response.status_code} {response.mimetype} {response.get_data(as_text=True)[:1500]}"


# --- the interface ---------------------------------------------------------------------------------

class DialectAdapter(abc.ABC):
    """One dialect, as the contract suite drives it."""

    #: the dialect's name (the pytest id of its parametrisation).
    name: str = ""
    #: the engine namespace the dialect stores its records under (`records.namespace`).
    namespace: str = ""
    #: the status the dialect answers for an unknown or foreign id, and for an unknown path.
    not_found_status: int = 404
    #: the status the dialect answers for a caller whose role may not do the request.
    forbidden_status: int = 403
    #: the statuses a successful push answers with (before `wait_applied`).
    push_ok_statuses: tuple[int, ...] = (200,)

    def use_the_blob_store(self, monkeypatch) -> None:
        """Make a push write its payload to the blob store (the blob-store fault needs it): a payload up
        to workers.api.INLINE_PAYLOAD_BYTES is kept in its job row instead; here none is."""
        from workers import api
        monkeypatch.setattr(api, "INLINE_PAYLOAD_BYTES", -1)

    # -- principals ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def setup(self, env: Env, tenant_a: str, tenant_b: str) -> Creds:
        """Create (over the HTTP admin endpoints) what the dialect needs in two fresh tenants, and
        return the credentials: a writer and a read-only principal in `tenant_a`, a writer in
        `tenant_b`. Called once per test; the tenants are new each time."""

    # -- records ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def good_record(self, i: int) -> Any:
        """A valid record, distinct for each `i` (same `i`, same record: a replay sends equal bytes)."""

    @abc.abstractmethod
    def bad_record(self) -> Any:
        """One record that validation must reject (e.g. a wrong type in a required field) while the rest
        of its batch is applied."""

    @abc.abstractmethod
    def key_of(self, record: Any) -> str:
        """The key `stored_keys` reports for `record` once it is stored."""

    def id_of(self, record: Any) -> str:
        """The dialect's id of `record` as its error reports name it (default: `key_of`)."""
        return self.key_of(record)

    # -- handing in a batch -------------------------------------------------------------------------

    @abc.abstractmethod
    def push(self, env: Env, creds: Creds, records: list, batch_id: str):
        """Hand in `records` as one batch identified by `batch_id` as `creds.writer`; return the HTTP
        response the dialect answers the hand-in with (for a multi-step hand-in, the last step's, or the
        first step that failed). The same `records` and `batch_id` again is a replay."""

    def wait_applied(self, env: Env, creds: Creds, response, timeout: float = 30) -> None:
        """Return once the batch answered by `response` is applied (COMPLETED) or raise AssertionError.
        The default suits dialects that answer only after applying."""

    def replay_answer(self, response) -> Any:
        """The part of a push answer a replay must reproduce (default: the body's bytes)."""
        return response.get_data()

    @abc.abstractmethod
    def stored_keys(self, env: Env, creds: Creds) -> set[str]:
        """The keys of the live records stored now in tenant A, read back through the dialect's own read
        API where it has one (else from `records` with plain SQL)."""

    def reported_errors(self, env: Env, creds: Creds, response) -> list[Reported] | None:
        """The per-record errors reported for the batch answered by `response` (after `wait_applied`);
        None when the dialect reports none."""
        return None

    def record_changes(self, env: Env, creds: Creds) -> int:
        """How many engine changes tenant A has (`record_changes` rows): a replay must add none."""
        return env.sql("SELECT count(*) FROM record_changes WHERE tenant_id = :t", {"t": creds.tenant_a})[0][0]

    # -- error requests -----------------------------------------------------------------------------

    @abc.abstractmethod
    def malformed_json_requests(self, creds: Creds) -> list[Req]:
        """Requests to the dialect's JSON endpoints whose body is not JSON (expect 400)."""

    @abc.abstractmethod
    def oversize_requests(self, creds: Creds, limits: dict) -> list[Req]:
        """Requests whose body is over the caps in `limits` (`max_body_bytes`, `max_upload_bytes`, also
        sent chunked, without a Content-Length: see `chunked`; a batch of more than
        `max_records_per_push` records where the dialect takes batches; expect 413)."""

    @abc.abstractmethod
    def unknown_path_requests(self, creds: Creds) -> list[Req]:
        """Authenticated requests to paths under the dialect's prefix that do not exist (expect
        `not_found_status`)."""

    @abc.abstractmethod
    def wrong_role_requests(self, creds: Creds) -> list[Req]:
        """Requests by a principal whose role may not make them, e.g. a read-only user pushing (expect
        `forbidden_status`)."""

    @abc.abstractmethod
    def missing_credentials_requests(self, creds: Creds) -> list[Req]:
        """Requests that carry no token or credentials (expect 401)."""

    @abc.abstractmethod
    def foreign_id_cases(self, env: Env, creds: Creds) -> list[ForeignIdCase]:
        """Create something in tenant A (no worker runs: a queued job is enough), then build the pairs
        of requests by tenant B for A's id and for an unknown id."""

    def hostile_targets(self, env: Env, creds: Creds) -> list[HostileTarget]:
        """Every place the dialect's endpoints (the write endpoints above all) take a value from a
        request: body members, records of a batch, query parameters, form fields, headers, path ids. May
        prepare what the requests need (an uploaded file, an open upload)."""
        return []

    def assert_tenant_a_intact(self, env: Env, creds: Creds) -> None:
        """After tenant B's requests for A's ids (some of them deletes), assert A's things are still
        there (default: nothing to check)."""

    # -- the dialect's error shape ------------------------------------------------------------------

    @abc.abstractmethod
    def assert_error_envelope(self, response, status: int) -> None:
        """Assert that `response` has `status` and the dialect's error body."""

    def assert_no_exception_text(self, response, secrets: Sequence[str] = ()) -> None:
        """Assert that an error body carries no exception text (tracebacks, exception class names,
        driver messages, file paths in `secrets`)."""
        text = response.get_data(as_text=True)
        markers = ["Traceback", 'File "', "Error:", "Exception:", "psycopg", "sqlalchemy", "OperationalError",
                   "NotADirectoryError", "FileExistsError", "PermissionError", "[Errno", "errno", "werkzeug",
                   "Connection refused", "could not connect", " line "] + [s for s in secrets if s]
        leaked = [m for m in markers if m in text]
        assert not leaked, f"the error body carries exception text {leaked}: {show(response)}"
