"""Signing in to the ops console through its form, as a browser does (with the CSRF token)."""
from __future__ import annotations

import re

from models import jobs
from models.kinds import PROBES
from models.users import ensure_tenant

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path="/ops/login") -> str:
    page = client.get(path).get_data(as_text=True)
    return TOKEN.search(page).group(1)


def sign_in(client, user, password="pw-secret"):
    token = csrf_token(client)
    return client.post("/ops/login", data={"csrf_token": token, "username": user.username, "password": password})


def make_job(session, tenant, *, status="RUNNING", errors=(), total=100, done=25):
    ensure_tenant(session, tenant)
    job, _ = jobs.create_job(session, tenant_id=tenant, kind=PROBES["ingest"], params={"steps": 3})
    session.flush()
    if status in ("RUNNING", "FAILED", "COMPLETED"):
        jobs.claim(session, job.id, 60)
        jobs.progress(session, job.id, done=done, total=total, counts={"accepted": done})
    if errors:
        jobs.record_errors(session, job.id, list(errors))
    if status == "FAILED":
        jobs.fail(session, job.id, "internal_error", "the job crashed")
    if status == "COMPLETED":
        jobs.finish(session, job.id)
    session.commit()
    session.refresh(job)
    return job
