"""GET /jobs/<id> and GET /jobs/<id>/errors: any job's status, progress and per-record errors,
scoped to the caller's tenant (another tenant's job answers 404)."""
from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from models.ids import parse_uuid
from models.jobs import first_errors
from models.tables import Job, JobRecordError
from web import db
from web.auth import current_principal, require
from web.errors import NotFound
from web.ops.schemas import JobErrorsQuery, load

bp = Blueprint("ops_jobs", __name__)

FIRST_ERRORS = 10
MAX_PAGE = 500


def load_job(job_id: str) -> Job:
    principal = current_principal()
    parsed = parse_uuid(job_id)
    job = db.session().get(Job, parsed) if parsed is not None else None
    if job is None or not principal.may_act_in(job.tenant_id):
        raise NotFound("no such job")
    return job


def error_row(row: JobRecordError) -> dict:
    return {"position": row.position, "record_id": row.record_id, "code": row.code, "message": row.message,
            "path": row.path, "severity": row.severity}


def _iso(value):
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def progress_percent(job: Job) -> float | None:
    """Done as a percentage of the total (None while the total is unknown and the job unfinished)."""
    if job.progress_total:
        return round(min(100.0, 100.0 * job.progress_done / job.progress_total), 1)
    return 100.0 if job.status == "COMPLETED" else None


def job_view(job: Job, errors: list[JobRecordError]) -> dict:
    total = job.progress_total
    percent = progress_percent(job)
    return {
        "id": str(job.id), "kind": job.kind, "queue": job.queue, "tenant": job.tenant_id, "status": job.status,
        "progress": {"done": job.progress_done, "total": total, "percent": percent},
        "counts": job.counts or {}, "attempts": job.attempts, "max_attempts": job.max_attempts,
        "error": {"code": job.error_code, "detail": job.error_detail} if job.error_code else None,
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "updated_at": _iso(job.updated_at),
        "created_by": job.created_by,
        "first_errors": [error_row(e) for e in errors],
        "errors_url": f"/jobs/{job.id}/errors",
    }


@bp.get("/jobs/<job_id>")
@require()
def get_job(job_id: str):
    job = load_job(job_id)
    return job_view(job, first_errors(db.session(), job.id, FIRST_ERRORS))


@bp.get("/jobs/<job_id>/errors")
@require()
def job_errors(job_id: str):
    job = load_job(job_id)
    query = load(JobErrorsQuery(), request.args)  # integers within 64 bits, or a 400
    limit, after = max(1, min(MAX_PAGE, query["limit"])), query["after"]
    rows = db.session().execute(
        select(JobRecordError).where(JobRecordError.job_id == job.id, JobRecordError.id > after)
        .order_by(JobRecordError.id).limit(limit + 1)).scalars().all()
    page = rows[:limit]
    body = {"job_id": str(job.id), "errors": [error_row(r) for r in page], "has_more": len(rows) > limit}
    if len(rows) > limit:
        body["next"] = f"/jobs/{job.id}/errors?after={page[-1].id}&limit={limit}"
    return body
