"""Celery settings derived from Settings: named queues, JSON only, late acks, no result backend."""
from __future__ import annotations

from kombu import Queue

from config.settings import ALL_QUEUES, QUEUE_EXPORTS, QUEUE_INDEX, QUEUE_INGEST, QUEUE_MAINTENANCE, Settings

# Stable task names: the worker, the web front and the Procfile agree on these.
TASK_INGEST = "ingest.run_job"
TASK_INDEX = "index.run_job"
TASK_EXPORTS = "exports.run_job"
TASK_MAINTENANCE = "maintenance.run_job"
TASK_SWEEP = "maintenance.sweep"

TASK_FOR_QUEUE = {
    QUEUE_INGEST: TASK_INGEST,
    QUEUE_INDEX: TASK_INDEX,
    QUEUE_EXPORTS: TASK_EXPORTS,
    QUEUE_MAINTENANCE: TASK_MAINTENANCE,
}

TASK_ROUTES = {
    TASK_INGEST: {"queue": QUEUE_INGEST},
    TASK_INDEX: {"queue": QUEUE_INDEX},
    TASK_EXPORTS: {"queue": QUEUE_EXPORTS},
    TASK_MAINTENANCE: {"queue": QUEUE_MAINTENANCE},
    TASK_SWEEP: {"queue": QUEUE_MAINTENANCE},
}


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.redis_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_queues": [Queue(name) for name in ALL_QUEUES],
        "task_default_queue": QUEUE_INGEST,
        "task_routes": TASK_ROUTES,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        # The broker redelivers an unacked message only after this; keep it above the hard limit so a
        # long task is never handed to a second worker while the first still runs it.
        "broker_transport_options": {"visibility_timeout": settings.task_time_limit + 600},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_max_memory_per_child": 1024 * 1024,  # KiB: recycle a child that grew past 1 GiB
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
