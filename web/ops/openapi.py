"""/openapi.json: fieldsync's own API (jobs, ops console, health, metrics), generated with apispec from
the marshmallow schemas in web.ops.schemas that also validate those requests; /ops/api-docs shows it as
a page. The dialects' APIs follow their upstream descriptions and are not listed here."""
from __future__ import annotations

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app, jsonify, render_template

from web import admin_users
from web.ops import schemas

bp = Blueprint("ops_docs", __name__, template_folder="templates")

BEARER = [{"bearerAuth": []}]
SESSION = [{"opsSession": []}]
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def answer(description, schema=None, media="application/json"):
    body = {"description": description}
    if schema is not None:
        body["content"] = {media: {"schema": schema}}
    return body


ERRORS = {"400": answer("invalid input (the fields named)", "Problem"),
          "401": answer("not signed in / no valid token"), "404": answer("unknown, or another tenant's")}


def _page(summary, description=""):
    return {"summary": summary, "description": description, "security": SESSION,
            "responses": {"200": answer("an HTML page", {"type": "string"}, "text/html"),
                          "302": answer("to the sign-in form, without a session")}}


def _form(schema, summary, description, out="ActionOut", back="the job's page"):
    return {"summary": summary, "description": description, "security": SESSION,
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}},
            "responses": {"303": answer(f"back to {back}"),
                          "200": answer("with `Accept: application/json`", out),
                          "400": answer("a missing or wrong CSRF token, or invalid fields"), **ERRORS}}


def paths() -> dict[str, dict]:
    """OpenAPI paths of every non-dialect route, keyed by the Flask rule."""
    return {
        "/health": {"get": {"summary": "Health of PostgreSQL and Redis (public; Synkronus 1.0.3 shape)",
                            "responses": {"200": answer("all reachable", "Health"),
                                          "503": answer("a server is unreachable", "Health")}}},
        "/version": {"get": {"summary": "Server, database and build versions (public)",
                             "responses": {"200": answer("versions", {"type": "object"})}}},
        "/jobs/<job_id>": {"get": {"summary": "A job's status, progress, counts and first per-record errors",
                                   "security": BEARER, "parameters": [JOB_ID],
                                   "responses": {"200": answer("the job", "JobOut"), **ERRORS}}},
        "/jobs/<job_id>/errors": {"get": {"summary": "All per-record errors of a job, paged",
                                          "security": BEARER, "parameters": [JOB_ID, {"in": "query", "schema": "JobErrorsQuery"}],
                                          "responses": {"200": answer("a page", "JobErrorsPage"), **ERRORS}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (needs METRICS_TOKEN as a bearer token)",
                             "security": [{"metricsToken": []}],
                             "responses": {"200": answer("text exposition format", {"type": "string"}, "text/plain"),
                                           "401": answer("no or wrong token"),
                                           "404": answer("METRICS_TOKEN is not set")}}},
        "/openapi.json": {"get": {"summary": "This description", "responses": {"200": answer("OpenAPI 3", {"type": "object"})}}},
        "/ops/api-docs": {"get": {"summary": "This description as a page",
                                  "responses": {"200": answer("HTML", {"type": "string"}, "text/html")}}},
        "/ops/login": {
            "get": {"summary": "The sign-in form", "responses": {"200": answer("HTML", {"type": "string"}, "text/html")}},
            "post": {"summary": "Sign in with an admin account (sets the session cookie)",
                     "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": "LoginForm"}}},
                     "responses": {"303": answer("signed in: to `next` or the overview"),
                                   "400": answer("missing fields or CSRF token", "Problem"),
                                   "401": answer("wrong user name or password"), "403": answer("not an admin"),
                                   "429": answer("too many failures (Retry-After)")}}},
        "/ops/logout": {"post": {"summary": "Sign out", "security": SESSION,
                                 "responses": {"303": answer("to the sign-in form")}}},
        "/ops/": {"get": _page("Overview: workers, queues, running jobs, failures, records per minute")},
        "/ops/api/overview": {"get": {"summary": "The overview's data (polled by the page)", "security": SESSION,
                                      "responses": {"200": answer("overview", "Overview"), **ERRORS}}},
        "/ops/jobs": {"get": {**_page("Jobs, filtered"), "parameters": [{"in": "query", "schema": "JobFilterQuery"}]}},
        "/ops/api/jobs": {"get": {"summary": "Jobs, filtered, newest first (keyset `before`)", "security": SESSION,
                                  "parameters": [{"in": "query", "schema": "JobFilterQuery"}],
                                  "responses": {"200": answer("jobs", "JobList"), **ERRORS}}},
        "/ops/jobs/<job_id>": {"get": {**_page("A job, its progress live, its errors and controls"), "parameters": [JOB_ID]}},
        "/ops/api/jobs/<job_id>": {"get": {"summary": "A job (polled by its page)", "security": SESSION,
                                           "parameters": [JOB_ID], "responses": {"200": answer("the job", "JobOut"), **ERRORS}}},
        "/ops/jobs/<job_id>/failed.csv": {"get": {"summary": "Every refused record of the job as CSV",
                                                  "security": SESSION, "parameters": [JOB_ID],
                                                  "responses": {"200": answer("position, record_id, code, message, path, record",
                                                                               {"type": "string"}, "text/csv"), **ERRORS}}},
        "/ops/jobs/<job_id>/cancel": {"post": {**_form("CancelForm", "Cancel a QUEUED or RUNNING job",
                                                      "A running job stops at its next chunk boundary, keeping what it committed."),
                                               "parameters": [JOB_ID]}},
        "/ops/jobs/<job_id>/retry": {"post": {**_form("RetryForm", "Retry a FAILED job",
                                                     "One more attempt of the same job from its checkpoint; idempotent."),
                                              "parameters": [JOB_ID]}},
        "/ops/devices": {"get": {**_page("Devices"), "parameters": [{"in": "query", "schema": "DeviceFilterQuery"}]}},
        "/ops/api/devices": {"get": {"summary": "Devices (most recently seen first, or the silent ones)",
                                     "security": SESSION, "parameters": [{"in": "query", "schema": "DeviceFilterQuery"}],
                                     "responses": {"200": answer("devices", "DeviceList"), **ERRORS}}},
        "/ops/exports": {"get": _page("Export schedules (pause, resume) and the latest export runs, live")},
        "/ops/api/exports": {"get": {"summary": "The exports page's data (polled by the page)", "security": SESSION,
                                     "responses": {"200": answer("schedules and recent export jobs", "ConsoleExports"),
                                                   **ERRORS}}},
        "/ops/exports/<schedule_id>/pause": {"post": {
            **_form("ScheduleForm", "Pause an export schedule", "No run starts while paused; a run in flight ends.",
                    "ScheduleActionOut", "the exports page"), "parameters": [SCHEDULE_ID]}},
        "/ops/exports/<schedule_id>/resume": {"post": {
            **_form("ScheduleForm", "Resume an export schedule",
                    "The next run is the next fire time after now; fires missed while paused are not made up.",
                    "ScheduleActionOut", "the exports page"), "parameters": [SCHEDULE_ID]}},
        **_export_paths(),
        **_user_paths(),
        "/ops/static/<path:filename>": {"get": {"summary": "The console's stylesheet and script",
                                                "parameters": [{"name": "filename", "in": "path", "required": True,
                                                                "schema": {"type": "string"}}],
                                                "responses": {"200": answer("the file"), "404": answer("no such file")}}},
    }


EXPORT_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
SCHEDULE_ID = {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
SIG = {"name": "sig", "in": "query", "required": True, "schema": {"type": "string"},
       "description": "the signature of a download link handed out by GET /exports/{job_id}"}


def json_body(schema):
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def admin_operation(summary: str, schema, status: str = "200", body: str | None = None, *,
                    described: str = "done", **responses) -> dict:
    """An admin API operation (admin bearer token): its answer, 403 for another role, the usual errors,
    and `responses` added or replacing them."""
    operation = {"summary": summary, "tags": ["admin"], "security": BEARER,
                 "responses": {status: answer(described, schema), "403": answer("not an admin"), **ERRORS,
                               **responses}}
    if body:
        operation["requestBody"] = json_body(body)
    return operation


USERNAME = {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}


def _user_paths() -> dict[str, dict]:
    """fieldsync's user administration (web.admin_users)."""
    return {
        "/admin/users": {
            "post": admin_operation("Create a user in the admin's tenant subtree", "UserOut", "201", "UserIn",
                                    **{"409": answer("a user of that name exists")}),
            "get": admin_operation("The users of the admin's tenant subtree", "UserList")},
        "/admin/users/<username>": {
            "get": {**admin_operation("A user", "UserOut"), "parameters": [USERNAME]},
            "patch": {**admin_operation("Change a user's password (revoking its tokens) or role", "UserOut",
                                        body="UserPatch", **{"409": answer("your own role")}),
                      "parameters": [USERNAME]},
            "delete": {**admin_operation("Delete a user", {"type": "object"},
                                         **{"409": answer("yourself, or the last system admin")}),
                       "parameters": [USERNAME]}},
    }


def _export_paths() -> dict[str, dict]:
    """The analyst exports (admin or analyst; schedules: admin)."""
    schedule = lambda summary, out="ExportScheduleOut": {  # noqa: E731
        "summary": summary, "security": BEARER, "parameters": [SCHEDULE_ID],
        "responses": {"200": answer("the schedule", out), **ERRORS}}
    download = {"security": [], "responses": {"200": answer("the file", {"type": "string", "format": "binary"},
                                                              "application/octet-stream"),
                                              "404": answer("unknown, another tenant's, or a bad or expired signature")}}
    return {
        "/exports": {
            "post": {"summary": "Export a namespace's records as Parquet files with a manifest (a job on the exports queue)",
                     "security": BEARER, "requestBody": json_body("ExportSpecIn"),
                     "responses": {"202": answer("the export job (Location: its status)", "ExportOut"), **ERRORS}},
            "get": {"summary": "The tenant's exports, newest first", "security": BEARER,
                    "responses": {"200": answer("exports", "ExportList"), **ERRORS}}},
        "/exports/<job_id>": {"get": {"summary": "An export's status, progress, files and signed download links",
                                      "security": BEARER, "parameters": [EXPORT_ID],
                                      "responses": {"200": answer("the export", "ExportOut"), **ERRORS}}},
        "/exports/<job_id>/files/<path:name>": {"get": {
            **download, "summary": "One file of a run (Parquet or manifest.json), by signed link",
            "parameters": [EXPORT_ID, {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}, SIG]}},
        "/exports/<job_id>/zip": {"get": {**download, "summary": "The whole run as one ZIP, by signed link",
                                          "parameters": [EXPORT_ID, SIG]}},
        "/export-schedules": {
            "post": {"summary": "Schedule exports (cron, UTC); each run lands atomically in the target directory",
                     "security": BEARER, "requestBody": json_body("ExportScheduleIn"),
                     "responses": {"201": answer("the schedule", "ExportScheduleOut"),
                                   "409": answer("a schedule of that name exists"), **ERRORS}},
            "get": {"summary": "The tenant's schedules", "security": BEARER,
                    "responses": {"200": answer("schedules", "ExportScheduleList"), **ERRORS}}},
        "/export-schedules/<schedule_id>": {
            "get": schedule("A schedule"),
            "delete": {**schedule("Remove a schedule (its landed runs stay)"),
                       "responses": {"204": answer("removed"), **ERRORS}}},
        "/export-schedules/<schedule_id>/pause": {"post": schedule("Pause a schedule")},
        "/export-schedules/<schedule_id>/resume": {"post": schedule("Resume a schedule")},
    }


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: `<job_id>` → `{job_id}`, `<path:filename>` → `{filename}`."""
    import re
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


SCHEMAS = {name: getattr(schemas, name) for name in (
    "JobOut", "JobErrorsPage", "JobList", "Overview", "DeviceList", "ActionOut", "Problem", "Health",
    "JobErrorsQuery", "JobFilterQuery", "DeviceFilterQuery", "LoginForm", "RetryForm", "CancelForm",
    "ExportSpecIn", "ExportScheduleIn", "ExportOut", "ExportList", "ExportScheduleOut", "ExportScheduleList",
    "ScheduleForm", "ConsoleExports", "ScheduleActionOut")} | admin_users.SCHEMAS


def build_spec(version: str, own_apis=()) -> dict:
    """The description of the core's routes and of the dialects' own-API routes (`own_apis`)."""
    spec = APISpec(title="fieldsync", version=version, openapi_version="3.0.3",
                   plugins=[MarshmallowPlugin()],
                   info={"description": "fieldsync's own API: jobs, exports, the ops console, health and metrics. "
                                        "The sync dialects (Synkronus, mSupply, DIGIT) follow their upstream "
                                        "descriptions and are not listed; the admin APIs for users, mSupply "
                                        "sites and DIGIT forms are."})
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("opsSession", {"type": "apiKey", "in": "cookie", "name": "fieldsync_ops"})
    spec.components.security_scheme("metricsToken", {"type": "http", "scheme": "bearer"})
    every_schema, every_path = dict(SCHEMAS), paths()
    for api in own_apis:
        every_schema.update(api.schemas)
        every_path.update(api.paths)
    for name, schema in every_schema.items():
        spec.components.schema(name, schema=schema)
    for rule, operations in every_path.items():
        spec.path(path=openapi_path(rule), operations=operations)
    return spec.to_dict()


def _spec() -> dict:
    cached = current_app.extensions.get("fieldsync_openapi")
    if cached is None:
        cached = build_spec(current_app.config["FIELDSYNC_SETTINGS"].server_version,
                            current_app.extensions.get("fieldsync_own_apis", ()))
        current_app.extensions["fieldsync_openapi"] = cached
    return cached


@bp.get("/openapi.json")
def openapi_json():
    return jsonify(_spec())


@bp.get("/ops/api-docs")
def docs_page():
    return render_template("ops/api_docs.html", spec=_spec(), principal=None, page=None)
