"""GET /metrics: Prometheus text, for a scraper holding METRICS_TOKEN (`Authorization: Bearer …`); without
the setting the endpoint answers 404. The counters and histograms come from every process's files
(multiprocess mode); the gauges that describe the database and the broker are read at scrape time:
open jobs by kind and status, queue depth and the oldest waiting job's age per queue, and pull lag."""
from __future__ import annotations

import hmac
import logging
import time

from flask import Blueprint, Response, g, request

from config import metrics
from config.settings import ALL_QUEUES
from models import ops
from web import context, db
from web.errors import NotFound, Unauthorized

log = logging.getLogger(__name__)

bp = Blueprint("ops_metrics", __name__)


class _DatabaseCollector:
    def __init__(self, session, redis_client):
        self.session = session
        self.redis = redis_client

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        jobs = GaugeMetricFamily("fieldsync_jobs_open", "QUEUED and RUNNING jobs by kind and status",
                                 labels=["kind", "status"])
        for kind, status, number in ops.open_jobs_by_kind(self.session):
            jobs.add_metric([kind, status], number)
        yield jobs
        depth = GaugeMetricFamily("fieldsync_queue_depth", "Jobs waiting (QUEUED) per queue", labels=["queue"])
        oldest = GaugeMetricFamily("fieldsync_queue_oldest_age_seconds",
                                   "Age of the oldest waiting job per queue (0 when none waits)", labels=["queue"])
        depths = ops.queue_depths(self.session, None)
        now = time.time()
        for queue in ALL_QUEUES:
            entry = depths.get(queue, {})
            depth.add_metric([queue], entry.get("queued", 0))
            first = entry.get("oldest_queued_at")
            oldest.add_metric([queue], max(0.0, now - first.timestamp()) if first else 0.0)
        yield depth
        yield oldest
        lag_max = GaugeMetricFamily("fieldsync_pull_lag_max", "Largest pull lag of a device (the tenant's "
                                    "version counter minus the version it last pulled), per dialect and tenant",
                                    labels=["dialect", "tenant"])
        lag_mean = GaugeMetricFamily("fieldsync_pull_lag_mean", "Mean pull lag of the devices that pull "
                                     "versions, per dialect and tenant", labels=["dialect", "tenant"])
        pulling = GaugeMetricFamily("fieldsync_pulling_devices", "Devices with a known pulled version",
                                    labels=["dialect", "tenant"])
        for dialect, tenant, worst, mean, number in ops.pull_lag(self.session):
            lag_max.add_metric([dialect, tenant], worst or 0)
            lag_mean.add_metric([dialect, tenant], mean or 0.0)
            pulling.add_metric([dialect, tenant], number)
        yield lag_max
        yield lag_mean
        yield pulling


def _authorised(token: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@bp.get("/metrics")
def scrape():
    settings = context.settings()
    if not settings.metrics_token:
        raise NotFound("metrics are off: set METRICS_TOKEN to serve them")
    if not _authorised(settings.metrics_token):
        raise Unauthorized("a bearer token (METRICS_TOKEN) is required")
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    installed = metrics.install(settings)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(installed.directory))
    registry.register(_DatabaseCollector(db.session(), context.redis()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def install_request_metrics(app) -> None:
    """Count every request by route (the URL rule, never the raw path) and status, with its latency."""
    metrics.install(app.config["FIELDSYNC_SETTINGS"])

    @app.before_request
    def _start():
        g.fieldsync_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("fieldsync_started", None)
        installed = metrics.current()
        if started is None or installed is None:
            return response
        rule = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        method = request.method if request.method in _METHODS else "OTHER"  # labels stay few
        try:
            installed.http_requests.labels(method, rule, str(response.status_code)).inc()
            installed.http_latency.labels(method, rule).observe(time.perf_counter() - started)
        except Exception:  # a metric must never cost a request its answer
            log.debug("request not counted", exc_info=True)
        return response
