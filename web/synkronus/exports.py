"""GET /dataexport/parquet: the ZIP of one Parquet file per form type (see workers/synkronus/exports.py).
The ZIP is built by an exports job into the blob store and then served; the request waits for it within
SYNC_WAIT_SECONDS, and past that answers 202 with the URL that serves it when it is ready. Requests at
the same data version share one job and one ZIP."""
from __future__ import annotations

import orjson
from flask import Blueprint, current_app, send_file

from models.engine import current_version
from models.ids import parse_uuid
from models.synkronus import EXPORT_PARQUET
from models.tables import Job
from web import context, db
from web.auth import ANY_ROLE, current_principal, require
from web.errors import NotFound
from workers.api import submit_job, wait_for_end

bp = Blueprint("synkronus_export", __name__)

ZIP_NAME = "observations_parquet.zip"


@bp.get("/dataexport/parquet")
@require(*ANY_ROLE)
def parquet_export():
    principal = current_principal()
    session = db.session()
    until = current_version(session, principal.tenant_id)
    job, created = submit_job(session, context.celery(), tenant_id=principal.tenant_id, kind=EXPORT_PARQUET,
                              params={"until": until}, idempotency_key=f"parquet-{until}",
                              created_by=principal.username)
    if not created and job.status in ("FAILED", "CANCELLED"):  # an earlier try failed: try again
        job, _ = submit_job(session, context.celery(), tenant_id=principal.tenant_id, kind=EXPORT_PARQUET,
                            params={"until": until}, created_by=principal.username)
    job_id = job.id
    db.commit()
    return _answer(job_id, context.settings().sync_wait_seconds)


@bp.get("/dataexport/parquet/<job_id>")
@require(*ANY_ROLE)
def parquet_export_result(job_id: str):
    principal = current_principal()
    parsed = parse_uuid(job_id)
    job = db.session().get(Job, parsed) if parsed is not None else None
    if job is None or job.kind != EXPORT_PARQUET.name or job.tenant_id != principal.tenant_id:
        raise NotFound("no such export")
    return _answer(job.id, 0)


def _answer(job_id, wait_seconds: float):
    session = db.session()
    status = wait_for_end(session, context.redis(), job_id, wait_seconds) if wait_seconds > 0 else None
    job = session.get(Job, job_id)
    status = job.status
    if status == "COMPLETED":
        sha = (job.result or {}).get("sha256")
        session.commit()
        return send_file(context.blobs().path(sha), mimetype="application/zip", as_attachment=True,
                         download_name=ZIP_NAME, conditional=True, etag=sha)
    if status in ("FAILED", "CANCELLED"):
        body = {"error": job.error_code or "export_failed", "message": "the export failed; try again",
                "job_id": str(job.id)}
        return current_app.response_class(orjson.dumps(body), status=500, mimetype="application/json")
    url = f"/dataexport/parquet/{job.id}"
    body = {"job_id": str(job.id), "status": status, "status_url": url,
            "message": "the export is being built; GET status_url for the ZIP"}
    response = current_app.response_class(orjson.dumps(body), status=202, mimetype="application/json")
    response.headers["Location"] = url
    response.headers["Retry-After"] = "5"
    return response
