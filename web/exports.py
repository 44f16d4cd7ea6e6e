"""Analyst exports, for every namespace: POST /exports (a job on the exports queue), GET /exports and
GET /exports/<id> (status, progress, manifest, signed download URLs), the signed downloads themselves,
and export schedules (/export-schedules). An admin or an analyst may read and start exports; schedules
are changed by admins. Another tenant's export or schedule answers 404."""
from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from flask import Blueprint, request, send_file
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from config.settings import QUEUE_EXPORTS
from models import exports as store
from models.dialects import namespaces
from models.ids import parse_uuid
from models.kinds import EXPORT
from models.tables import ExportSchedule, Job
from web import context, db
from web.auth import ANALYST, check_tenant, current_principal, require
from web.errors import BadRequest, Conflict, Forbidden, NotFound
from web.jsonbody import read_json_object
from web.ops import schemas
from web.ops.jobs import _iso, progress_percent
from workers.exports import (
    MANIFEST, RUN_ZIP, SpecError, confine_target, next_fire, parse_cron, parse_spec, run_dir, submit_export,
)

bp = Blueprint("exports", __name__)

READERS = ("admin", ANALYST)
LIST_LIMIT = 100
NAME_MAX = 128
MAX_RETENTION = 1000
_SALT = "fieldsync-export-download"


def _spec(body: dict) -> dict:
    try:
        return parse_spec(body, namespaces(context.settings().dialects))
    except SpecError as exc:
        raise BadRequest(str(exc), code="invalid_export") from None


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(context.settings().jwt_secret, salt=_SALT)


def _base() -> str:
    return (context.settings().public_base_url or request.host_url).rstrip("/")


def signed_url(job_id, name: str) -> str:
    token = _serializer().dumps([str(job_id), name])
    path = "zip" if name == RUN_ZIP else "files/" + quote(name)
    return f"{_base()}/exports/{job_id}/{path}?sig={token}"


def _load(job_id: str) -> Job:
    principal = current_principal()
    parsed = parse_uuid(job_id)
    job = db.session().get(Job, parsed) if parsed is not None else None
    if job is None or job.queue != QUEUE_EXPORTS or not principal.may_act_in(job.tenant_id):
        raise NotFound("no such export")
    return job


def export_view(job: Job) -> dict:
    body = {
        "id": str(job.id), "kind": job.kind, "tenant": job.tenant_id, "status": job.status,
        "progress": {"done": job.progress_done, "total": job.progress_total, "percent": progress_percent(job)},
        "spec": {k: v for k, v in (job.params or {}).items() if k != "schedule_id"},
        "schedule_id": (job.params or {}).get("schedule_id"),
        "error": {"code": job.error_code, "detail": job.error_detail} if job.error_code else None,
        "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at), "created_by": job.created_by,
        "status_url": f"/exports/{job.id}", "files": [],
    }
    manifest = (job.result or {}).get("manifest") if job.kind == EXPORT.name else None
    if job.status == "COMPLETED" and manifest is not None:
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=context.settings().export_url_seconds)
        body["versions"] = manifest.get("versions")
        body["rows"] = manifest.get("rows")
        body["widened"] = manifest.get("widened", [])
        body["files"] = [{"path": f["path"], "record_type": f.get("record_type"), "day": f.get("day"),
                          "rows": f["rows"], "bytes": f["bytes"], "sha256": f["sha256"],
                          "url": signed_url(job.id, f["path"])} for f in manifest["files"]]
        body["manifest_url"] = signed_url(job.id, MANIFEST)
        body["zip_url"] = signed_url(job.id, RUN_ZIP)
        body["urls_expire_at"] = _iso(expires)
    elif job.status == "COMPLETED" and job.kind != EXPORT.name:
        body["download_url"] = f"/dataexport/parquet/{job.id}"
    return body


@bp.post("/exports")
@require(*READERS)
def start_export():
    body = read_json_object()
    schemas.load(schemas.ExportSpecIn(), body, code="invalid_export")  # the shape, at the edge
    principal = current_principal()
    tenant = check_tenant(principal, body.get("tenant") if isinstance(body.get("tenant"), str) else None)
    spec = _spec(body)
    session = db.session()
    job, _ = submit_export(session, context.celery(), tenant_id=tenant, spec=spec, created_by=principal.username)
    db.commit()
    view = export_view(job)
    return view, 202, {"Location": view["status_url"]}


@bp.get("/exports")
@require(*READERS)
def list_exports():
    principal = current_principal()
    rows = db.session().execute(select(Job).where(Job.tenant_id == principal.tenant_id, Job.queue == QUEUE_EXPORTS)
                                .order_by(Job.created_at.desc()).limit(LIST_LIMIT)).scalars().all()
    return {"exports": [export_view(job) for job in rows]}


@bp.get("/exports/<job_id>")
@require(*READERS)
def get_export(job_id: str):
    return export_view(_load(job_id))


def _signed(job_id: str, name: str):
    """The run's file `name` when the request's signature grants it (no bearer token needed)."""
    sig = request.args.get("sig", "")
    try:
        granted = _serializer().loads(sig, max_age=context.settings().export_url_seconds)
    except SignatureExpired:
        raise Forbidden("this download link has expired; GET the export again for a fresh one",
                        code="link_expired") from None
    except BadSignature:
        raise NotFound("no such export file") from None
    parsed = parse_uuid(job_id)
    if parsed is None or granted != [str(parsed), name]:
        raise NotFound("no such export file")
    job = db.session().get(Job, parsed)
    manifest = (job.result or {}).get("manifest") if job is not None and job.status == "COMPLETED" else None
    if manifest is None or (name not in (MANIFEST, RUN_ZIP) and name not in {f["path"] for f in manifest["files"]}):
        raise NotFound("no such export file")
    path = run_dir(context.settings(), parsed) / name
    if not path.is_file():
        raise NotFound("no such export file")
    media = {"manifest.json": "application/json", RUN_ZIP: "application/zip"}.get(name,
                                                                                 "application/vnd.apache.parquet")
    download = f"export-{str(parsed)[:8]}.zip" if name == RUN_ZIP else name.replace("/", "_")
    return send_file(path, mimetype=media, as_attachment=True, download_name=download, conditional=True)


@bp.get("/exports/<job_id>/files/<path:name>")
def download_file(job_id: str, name: str):
    return _signed(job_id, name)


@bp.get("/exports/<job_id>/zip")
def download_zip(job_id: str):
    return _signed(job_id, RUN_ZIP)


# --- schedules ---------------------------------------------------------------------------------------

def schedule_view(s: ExportSchedule) -> dict:
    return {"id": str(s.id), "name": s.name, "tenant": s.tenant_id, "cron": s.cron, "spec": s.spec,
            "target": s.target, "retention": s.retention, "paused": s.paused,
            "next_run_at": _iso(s.next_run_at), "last_job_id": str(s.last_job_id) if s.last_job_id else None,
            "last_until_version": s.last_until_version, "created_at": _iso(s.created_at),
            "created_by": s.created_by}


def parse_schedule(body: dict, root) -> dict:
    """name, cron, spec, target, retention of a new schedule; SpecError for anything wrong."""
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX or not name.isprintable():
        raise SpecError(f"name must be a non-empty string of at most {NAME_MAX} printable characters")
    cron = parse_cron(body.get("cron"))
    spec = parse_spec(body.get("spec"), namespaces(context.settings().dialects))
    if spec.get("until") is not None:
        raise SpecError("a schedule's spec may not fix `until`: each run goes up to the data of its time")
    target = confine_target(root, body.get("target"))
    retention = body.get("retention", 7)
    if type(retention) is not int or not 1 <= retention <= MAX_RETENTION:
        raise SpecError(f"retention must be an integer from 1 to {MAX_RETENTION}")
    return {"name": name.strip(), "cron": cron, "spec": spec, "target": target, "retention": retention}


@bp.post("/export-schedules")
@require("admin")
def create_schedule():
    body = read_json_object()
    schemas.load(schemas.ExportScheduleIn(), body, code="invalid_schedule")  # the shape, at the edge
    principal = current_principal()
    try:
        fields = parse_schedule(body, context.settings().export_root)
    except SpecError as exc:
        raise BadRequest(str(exc), code="invalid_schedule") from None
    session = db.session()
    now = dt.datetime.now(dt.timezone.utc)
    try:
        schedule = store.create_schedule(session, tenant_id=principal.tenant_id, created_by=principal.username,
                                         next_run_at=next_fire(fields["cron"], now), **fields)
    except store.ScheduleExists:
        raise Conflict("a schedule of that name exists in this tenant", code="schedule_exists") from None
    db.commit()
    return schedule_view(schedule), 201, {"Location": f"/export-schedules/{schedule.id}"}


@bp.get("/export-schedules")
@require(*READERS)
def list_schedules():
    principal = current_principal()
    return {"schedules": [schedule_view(s) for s in store.list_schedules(db.session(), principal.tenant_id)]}


def _schedule(schedule_id: str) -> ExportSchedule:
    principal = current_principal()
    found = store.get_schedule(db.session(), parse_uuid(schedule_id), principal.tenant_id)
    if found is None:
        raise NotFound("no such export schedule")
    return found


@bp.get("/export-schedules/<schedule_id>")
@require(*READERS)
def get_schedule(schedule_id: str):
    return schedule_view(_schedule(schedule_id))


def set_paused(found: ExportSchedule, paused: bool) -> None:
    """Pause a schedule, or resume it from its next fire time after now (a resumed schedule does not
    run the fires it missed while paused)."""
    found.paused = paused
    if not paused:
        found.next_run_at = next_fire(found.cron, dt.datetime.now(dt.timezone.utc))


@bp.post("/export-schedules/<schedule_id>/pause")
@require("admin")
def pause_schedule(schedule_id: str):
    found = _schedule(schedule_id)
    set_paused(found, True)
    db.commit()
    return schedule_view(found)


@bp.post("/export-schedules/<schedule_id>/resume")
@require("admin")
def resume_schedule(schedule_id: str):
    found = _schedule(schedule_id)
    set_paused(found, False)
    db.commit()
    return schedule_view(found)


@bp.delete("/export-schedules/<schedule_id>")
@require("admin")
def delete_schedule(schedule_id: str):
    found = _schedule(schedule_id)
    db.session().delete(found)
    db.commit()
    return "", 204
