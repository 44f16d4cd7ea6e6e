"""/ops: the ops console. Server-rendered pages (Jinja, autoescaped) whose live parts poll the JSON
under /ops/api with plain fetch; job controls (cancel, retry) as POST forms with a CSRF token; the
failed rows of a job as CSV. Every view is for a signed-in admin and sees only its tenant subtree
(another tenant's job answers 404 like an unknown one)."""
from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from config import metrics
from models import ops
from models.ids import parse_uuid
from models.jobs import cancel as cancel_job
from models.jobs import first_errors
from models.kinds import EXPORT
from models.exports import get_schedule
from models.tables import ExportSchedule, Job
from models.users import burn_time, check_password, get_by_username
from web import context, db, throttle
from web import exports as exports_api
from web.errors import ApiError, NotFound, TooManyRequests, default_renderer, register_renderer
from web.ops import overview as overview_data
from web.ops import schemas
from web.ops.jobs import job_view, progress_percent
from web.ops.session import console_principal, csrf, require_admin, scope, sign_in, sign_out
from workers import api, doorbell

bp = Blueprint("ops_console", __name__, url_prefix="/ops", template_folder="templates",
               static_folder="static", static_url_path="/static")

FIRST_ERRORS = 20


@bp.before_request
def _csrf():
    if request.method == "POST":
        csrf.protect()


@bp.after_request
def _headers(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                                   "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
    return response


def _principal():
    return console_principal()


def _load_job(job_id: str) -> Job:
    principal = _principal()
    parsed = parse_uuid(job_id)
    job = db.session().get(Job, parsed) if parsed is not None else None
    if job is None or not principal.may_act_in(job.tenant_id):
        raise NotFound("no such job")
    return job


# --- sign-in -------------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Only a path inside the console: never another host (an open redirect)."""
    if not value:
        return url_for("ops_console.overview")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/ops") or "\\" in value:
        return url_for("ops_console.overview")
    return value


@bp.get("/login")
def login():
    return render_template("ops/login.html", next=request.args.get("next", ""), error=None)


@bp.post("/login")
def login_post():
    form = schemas.load(schemas.LoginForm(), request.form)
    settings = context.settings()
    redis_client = context.redis()
    address = request.remote_addr
    wait = throttle.login_blocked_for(redis_client, form["username"], address)
    if wait:
        raise TooManyRequests("too many failed sign-ins; try again later", retry_after=wait)
    user = get_by_username(db.session(), form["username"])
    if user is None:
        burn_time(settings.bcrypt_rounds)
    if user is None or not check_password(form["password"], user.password_hash):
        throttle.login_failed(redis_client, form["username"], address)
        return render_template("ops/login.html", next=form["next"] or "",
                               error="Wrong user name or password."), 401
    throttle.login_succeeded(redis_client, form["username"], address)
    if user.role != "admin":
        return render_template("ops/login.html", next=form["next"] or "",
                               error="The ops console is for admin accounts."), 403
    sign_in(user)
    return redirect(_safe_next(form["next"]), code=303)


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("ops_console.login"), code=303)


# --- overview ------------------------------------------------------------------------------------------

@bp.get("/")
@require_admin(page=True)
def overview():
    principal = _principal()
    return render_template("ops/overview.html", principal=principal, page="overview")


@bp.get("/api/overview")
@require_admin(page=False)
def api_overview():
    principal = _principal()
    return overview_data.overview(db.session(), context.redis(), context.settings(), scope(principal))


# --- jobs ----------------------------------------------------------------------------------------------

def _job_filters():
    return schemas.load(schemas.JobFilterQuery(), request.args)


def _jobs(filters) -> tuple[list[Job], str | None]:
    principal = _principal()
    rows = ops.list_jobs(db.session(), scope(principal), status=filters["status"], kind=filters["kind"],
                         tenant=filters["tenant"], since=filters["since"], until=filters["until"],
                         before=filters["before"], limit=filters["limit"])
    following = None
    if len(rows) == filters["limit"]:
        args = {k: v for k, v in request.args.items() if k != "before"}
        args["before"] = overview_data.iso(rows[-1].created_at)
        following = args
    return rows, following


@bp.get("/jobs")
@require_admin(page=True)
def jobs_page():
    filters = _job_filters()
    rows, following = _jobs(filters)
    return render_template("ops/jobs.html", principal=_principal(), page="jobs", jobs=rows, filters=filters,
                           kinds=ops.job_kinds(db.session()), statuses=schemas.JOB_STATUSES,
                           next_args=following, percent=progress_percent)


@bp.get("/api/jobs")
@require_admin(page=False)
def api_jobs():
    rows, following = _jobs(_job_filters())
    return {"jobs": [overview_data.job_summary(j) for j in rows],
            "next": url_for("ops_console.api_jobs", **following) if following else None}


@bp.get("/jobs/<job_id>")
@require_admin(page=True)
def job_page(job_id: str):
    job = _load_job(job_id)
    errors = first_errors(db.session(), job.id, FIRST_ERRORS)
    return render_template("ops/job.html", principal=_principal(), page="jobs", job=job,
                           view=job_view(job, errors), errors=errors)


@bp.get("/api/jobs/<job_id>")
@require_admin(page=False)
def api_job(job_id: str):
    job = _load_job(job_id)
    return job_view(job, first_errors(db.session(), job.id, FIRST_ERRORS))


CSV_COLUMNS = ("position", "record_id", "code", "message", "path", "record")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading formula character gets a quote before it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@bp.get("/jobs/<job_id>/failed.csv")
@require_admin(page=False)
def failed_csv(job_id: str):
    job_id = _load_job(job_id).id  # the rows stream after the request's session has closed
    sessions = current_app.extensions["fieldsync_sessions"]  # web.db's factory

    def rows():
        session = sessions()
        try:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            for number, row in enumerate(ops.failed_rows(session, job_id), 1):
                writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
                if number % 500 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()
        finally:
            session.close()

    response = Response(rows(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="job-{job_id}-failed-rows.csv"'
    return response


def _after_action(job: Job, changed: bool):
    if request.accept_mimetypes.best == "application/json":
        return {"id": str(job.id), "status": job.status, "changed": changed}
    return redirect(url_for("ops_console.job_page", job_id=str(job.id)), code=303)


@bp.post("/jobs/<job_id>/cancel")
@require_admin(page=False)
def cancel(job_id: str):
    """QUEUED: never runs. RUNNING: its next chunk boundary finds it cancelled and stops there; what it
    committed stays."""
    schemas.load(schemas.CancelForm(), request.form)
    job = _load_job(job_id)
    session = db.session()
    changed = cancel_job(session, job.id)
    db.commit()
    if changed:
        doorbell.ring(context.redis(), job.id)
        metrics.job_ended(job.kind, "CANCELLED", None)
    session.refresh(job)
    return _after_action(job, changed)


@bp.post("/jobs/<job_id>/retry")
@require_admin(page=False)
def retry(job_id: str):
    """A FAILED job runs once more from its checkpoint; the same form sent twice retries once."""
    form = schemas.load(schemas.RetryForm(), request.form)
    job = _load_job(job_id)
    session = db.session()
    changed = ops.retry(session, job.id, seen_attempts=form["attempts"])
    db.commit()
    if changed:
        api.send(context.celery(), str(job.id), job.queue)  # the sweeper re-sends it if this is lost
    session.refresh(job)
    return _after_action(job, changed)


# --- devices -------------------------------------------------------------------------------------------

def _devices():
    query = schemas.load(schemas.DeviceFilterQuery(), request.args)
    settings = context.settings()
    rows = ops.list_devices(db.session(), scope(_principal()), tenant=query["tenant"], dialect=query["dialect"],
                            silent_days=settings.ops_silent_days if query["silent"] else None,
                            limit=query["limit"])
    return query, rows


def device_view(device, silent_days: int) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    return {"tenant": device.tenant_id, "dialect": device.dialect, "client_id": device.client_id,
            "app_version": device.app_version, "last_seen_at": overview_data.iso(device.last_seen_at),
            "last_push_at": overview_data.iso(device.last_push_at),
            "last_pull_at": overview_data.iso(device.last_pull_at), "last_error": device.last_error,
            "last_error_at": overview_data.iso(device.last_error_at), "records_pushed": device.records_pushed,
            "pushes": device.pushes, "pulls": device.pulls,
            "silent": (now - device.last_seen_at).total_seconds() > silent_days * 86400}


@bp.get("/devices")
@require_admin(page=True)
def devices_page():
    query, rows = _devices()
    days = context.settings().ops_silent_days
    return render_template("ops/devices.html", principal=_principal(), page="devices", query=query,
                           devices=[device_view(d, days) for d in rows], silent_days=days)


@bp.get("/api/devices")
@require_admin(page=False)
def api_devices():
    _, rows = _devices()
    days = context.settings().ops_silent_days
    return {"devices": [device_view(d, days) for d in rows], "silent_days": days}


# --- exports -------------------------------------------------------------------------------------------

RECENT_EXPORTS = 20


def schedule_console_view(schedule: ExportSchedule, last: Job | None) -> dict:
    view = exports_api.schedule_view(schedule)
    view["last_run"] = None if last is None else {
        "job_id": str(last.id), "status": last.status, "finished_at": overview_data.iso(last.finished_at),
        "error": last.error_code}
    return view


def _exports() -> dict:
    principal = _principal()
    session = db.session()
    schedules = [schedule_console_view(s, last) for s, last in ops.list_schedules(session, scope(principal))]
    recent = ops.list_jobs(session, scope(principal), kind=EXPORT.name, limit=RECENT_EXPORTS)
    return {"schedules": schedules, "exports": [overview_data.job_summary(j) for j in recent]}


@bp.get("/exports")
@require_admin(page=True)
def exports_page():
    return render_template("ops/exports.html", principal=_principal(), page="exports", **_exports())


@bp.get("/api/exports")
@require_admin(page=False)
def api_exports():
    return _exports()


def _load_schedule(schedule_id: str) -> ExportSchedule:
    found = get_schedule(db.session(), parse_uuid(schedule_id))
    if found is None or not _principal().may_act_in(found.tenant_id):
        raise NotFound("no such export schedule")
    return found


def _schedule_action(schedule_id: str, paused: bool):
    schemas.load(schemas.ScheduleForm(), request.form)
    found = _load_schedule(schedule_id)
    changed = found.paused != paused
    if changed:
        exports_api.set_paused(found, paused)
    db.commit()
    if request.accept_mimetypes.best == "application/json":
        return {"id": str(found.id), "paused": found.paused, "next_run_at": overview_data.iso(found.next_run_at),
                "changed": changed}
    return redirect(url_for("ops_console.exports_page"), code=303)


@bp.post("/exports/<schedule_id>/pause")
@require_admin(page=False)
def pause_schedule(schedule_id: str):
    """No run starts while paused; a run in flight finishes."""
    return _schedule_action(schedule_id, True)


@bp.post("/exports/<schedule_id>/resume")
@require_admin(page=False)
def resume_schedule(schedule_id: str):
    """The next run is the next fire time after now; runs missed while paused are not made up."""
    return _schedule_action(schedule_id, False)


# --- errors --------------------------------------------------------------------------------------------

def _render_error(err: ApiError):
    if request.path.startswith("/ops/api/") or request.accept_mimetypes.best == "application/json":
        return default_renderer(err)
    response = Response(render_template("ops/error.html", status=err.status, message=err.message,
                                        principal=None, page=None), status=err.status, mimetype="text/html")
    return response


def register(app) -> None:
    app.register_blueprint(bp)
    register_renderer(app, "ops_console", _render_error)
