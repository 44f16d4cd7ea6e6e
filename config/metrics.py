"""Prometheus metrics of every fieldsync process, in prometheus_client's multiprocess mode: each process
(gunicorn worker, Celery child, scheduler) writes its samples to files under `Settings.metrics_path`, and
/metrics adds them up. `install(settings)` must run before a metric is touched; it is idempotent, and
the first directory a process installs is the one it keeps.

The gauges that describe the database (open jobs, queue depth, pull lag) are not kept here: /metrics
reads them from PostgreSQL at scrape time."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace

from config.settings import Settings

_lock = threading.Lock()
_state: dict = {}

# Job durations run from a second (a small push) to an hour (a large dump).
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def install(settings: Settings) -> SimpleNamespace:
    """Point prometheus_client at the deployment's metrics directory and define the metrics."""
    with _lock:
        if "metrics" in _state:
            return _state["metrics"]
        directory = Path(settings.metrics_path)
        directory.mkdir(parents=True, exist_ok=True)
        # prometheus_client reads its directory from this variable (in this process and its forks).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        from prometheus_client import Counter, Histogram, values
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()
        metrics = SimpleNamespace(
            directory=directory,
            jobs_finished=Counter("fieldsync_jobs_finished", "Jobs that ended, by kind and final status",
                                  ["kind", "status"], registry=None),
            job_duration=Histogram("fieldsync_job_duration_seconds",
                                   "Time from a job's first start to its end, by kind and final status",
                                   ["kind", "status"], buckets=JOB_BUCKETS, registry=None),
            records=Counter("fieldsync_records", "Records applied by the engine, by namespace and outcome "
                            "(accepted, rejected, duplicate, conflict)", ["namespace", "outcome"], registry=None),
            http_requests=Counter("fieldsync_http_requests", "HTTP requests by route and status",
                                  ["method", "route", "status"], registry=None),
            http_latency=Histogram("fieldsync_http_request_duration_seconds", "HTTP request latency by route",
                                   ["method", "route"], buckets=HTTP_BUCKETS, registry=None),
        )
        _state["metrics"] = metrics
        return metrics


def current() -> SimpleNamespace | None:
    """The installed metrics, or None in a process that installed none."""
    return _state.get("metrics")


def count_records(namespace: str, counts: dict) -> None:
    """Add one chunk's outcomes (a dict of outcome → number) to the record counters."""
    metrics = current()
    if metrics is None:
        return
    for outcome in ("accepted", "rejected", "duplicate", "conflict"):
        number = counts.get(outcome) or 0
        if number:
            metrics.records.labels(namespace, outcome).inc(number)


def job_ended(kind: str, status: str, seconds: float | None) -> None:
    metrics = current()
    if metrics is None:
        return
    metrics.jobs_finished.labels(kind, status).inc()
    if seconds is not None:
        metrics.job_duration.labels(kind, status).observe(max(0.0, seconds))


def clear_directory(settings: Settings) -> None:
    """Remove the metric files of processes that are gone (an earlier run's), before a deployment's
    processes start: `fieldsync serve` does; see the README for the Procfile. prometheus_client names each
    file after the pid that writes it; a live process's files stay (another run may share the directory)."""
    directory = Path(settings.metrics_path)
    if not directory.is_dir():
        return
    for path in directory.glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and _alive(int(pid)):
            continue
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
