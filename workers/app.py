"""make_celery(settings): the Celery app with our queues and the thin task shells."""
from __future__ import annotations

import logging

from celery import Celery

from config.celery import TASK_FOR_QUEUE, TASK_SWEEP, celery_config
from config import metrics
from config.settings import Settings
from workers.errors import TransientError
from workers.runner import run_job
from workers.runtime import Runtime
from workers.sweeper import sweep_once

log = logging.getLogger(__name__)

RETRY_BACKOFF_MAX = 300


def make_celery(settings: Settings, runtime: Runtime | None = None) -> Celery:
    app = Celery("fieldsync")
    app.config_from_object(celery_config(settings))
    app.runtime = runtime or Runtime(settings)
    app.runtime.celery_app = app
    metrics.install(settings)
    _register_tasks(app)
    _connect_heartbeats(app)
    return app


def _connect_heartbeats(app: Celery) -> None:
    """A worker's pool processes beat into Redis (workers.heartbeat); its main process only names them.
    The handlers fire in worker processes alone, so a web process that builds an app to send is unaffected."""
    from celery import signals

    from workers import heartbeat

    def named(sender=None, instance=None, **kw):
        queues = getattr(getattr(instance.app.amqp, "queues", None), "consume_from", None) or {}
        heartbeat.set_identity(str(sender), list(queues))

    def child_started(**kw):
        heartbeat.start(app.runtime)

    signals.celeryd_after_setup.connect(named, weak=False)
    signals.worker_process_init.connect(child_started, weak=False)


def _register_tasks(app: Celery) -> None:
    def make_job_task(task_name: str):
        @app.task(name=task_name, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=8)
        def job_task(self, job_id: str):
            try:
                return run_job(app.runtime, job_id)
            except TransientError as exc:
                countdown = min(RETRY_BACKOFF_MAX, 2 ** (self.request.retries + 1))
                raise self.retry(exc=exc, countdown=countdown)
        return job_task

    for task_name in TASK_FOR_QUEUE.values():
        make_job_task(task_name)

    @app.task(name=TASK_SWEEP, acks_late=True)
    def sweep_task():
        return sweep_once(app.runtime, app)
