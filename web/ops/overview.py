"""The console's overview, built from indexed reads of PostgreSQL (open jobs, recent failures, devices)
and Redis (heartbeats, per-minute counters, broker list lengths). Shared by /ops, /ops/api/overview and
`fieldsync ops status`."""
from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from config.settings import ALL_QUEUES
from models import ops
from models.ids import parse_uuid
from models.tables import Job
from models.users import tenant_covers
from web.ops.jobs import job_view
from workers import heartbeat

log = logging.getLogger(__name__)


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def job_summary(job: Job) -> dict:
    view = job_view(job, [])
    view.pop("first_errors")
    return view


def overview(session, redis_client, settings, scope: str | None) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    depths = ops.queue_depths(session, scope)
    running = ops.running_jobs(session, scope)
    failures, recent = ops.recent_failures(session, scope, hours=24, limit=10)
    devices = ops.device_summary(session, scope, settings.ops_silent_days)
    try:
        workers = heartbeat.read_workers(redis_client, settings.ops_worker_timeout_seconds)
        applied = heartbeat.applied_per_minute(redis_client, 60)
        broker = dict(zip(ALL_QUEUES, _llen(redis_client, ALL_QUEUES)))
        redis_ok = True
    except Exception:
        log.warning("Redis unreachable for the ops overview", exc_info=True)
        workers, applied, broker, redis_ok = [], [], {}, False
    if scope is not None:
        _hide_other_tenants_jobs(session, workers, scope)
    queues = []
    for name in ALL_QUEUES:
        entry = depths.get(name, {"queued": 0, "running": 0, "oldest_queued_at": None})
        oldest = entry["oldest_queued_at"]
        queues.append({"queue": name, "queued": entry["queued"], "running": entry["running"],
                       "oldest_queued_at": iso(oldest),
                       "oldest_age_seconds": (now - oldest).total_seconds() if oldest else None,
                       "broker_waiting": broker.get(name)})
    return {"workers": workers, "queues": queues, "running": [job_summary(j) for j in running],
            "failures_24h": failures, "recent_failures": [job_summary(j) for j in recent],
            "applied_per_minute": [[t, n] for t, n in applied], "devices": devices,
            "heartbeat_timeout_seconds": settings.ops_worker_timeout_seconds, "redis_ok": redis_ok,
            "generated_at": iso(now), "scope": scope}


def _hide_other_tenants_jobs(session, workers: list[dict], scope: str) -> None:
    """Workers are shared; the jobs they run now are shown only when they are in the caller's subtree."""
    ids = {parse_uuid(j["id"]) for w in workers for j in w["jobs"]} - {None}
    visible = set()
    if ids:
        visible = {str(job_id) for job_id, tenant in session.execute(
            select(Job.id, Job.tenant_id).where(Job.id.in_(ids))) if tenant_covers(scope, tenant)}
    for worker in workers:
        worker["jobs"] = [j for j in worker["jobs"] if j["id"] in visible]


def _llen(redis_client, names):
    pipe = redis_client.pipeline()
    for name in names:
        pipe.llen(name)
    return pipe.execute()
