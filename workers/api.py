"""How the web front hands work to the workers: create the job row in the caller's transaction and send
the message only after that transaction commits. If sending fails the job stays QUEUED and the sweeper
sends it later, so a commit without a message strands nothing."""
from __future__ import annotations

import logging

from sqlalchemy import event
from sqlalchemy.orm import Session

from config.celery import TASK_FOR_QUEUE
from models import jobs
from models.kinds import JobKind
from models.tables import TERMINAL_STATUSES, Job
from workers import doorbell

log = logging.getLogger(__name__)

# A job's input up to this size is kept in its row (durable with the job's own commit, no file to write
# and fsync first); a larger one goes to the blob store.
INLINE_PAYLOAD_BYTES = 4 * 1024 * 1024

_PENDING_KEY = "fieldsync_pending_enqueue"
_LISTENING_KEY = "fieldsync_enqueue_listening"


def submit_job(session: Session, celery_app, *, tenant_id: str, kind: JobKind, countdown: float = 0.0, **fields):
    """Create (or find, by idempotency key) a job of `kind` (a models.kinds.JobKind constant); enqueue it
    on the kind's queue after commit when it is new (to start no sooner than `countdown` seconds later).
    Returns (job, created)."""
    job, created = jobs.create_job(session, tenant_id=tenant_id, kind=kind, **fields)
    if created:
        enqueue_after_commit(session, celery_app, job.id, kind.queue, countdown=countdown)
    return job, created


def enqueue_after_commit(session: Session, celery_app, job_id, queue: str, *, countdown: float = 0.0) -> None:
    if not session.info.get(_LISTENING_KEY):
        # Listeners stay for the session's life (removing them inside an event is not allowed);
        # they act only on what is pending.
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_soft_rollback", _drop_pending)
        session.info[_LISTENING_KEY] = True
    session.info.setdefault(_PENDING_KEY, []).append((celery_app, str(job_id), queue, countdown))


def send(celery_app, job_id: str, queue: str, countdown: float = 0.0) -> bool:
    try:
        options = {"countdown": countdown} if countdown > 0 else {}
        celery_app.send_task(TASK_FOR_QUEUE[queue], args=[str(job_id)], queue=queue, **options)
        return True
    except Exception:
        log.warning("could not enqueue job %s; the sweeper will send it", job_id, exc_info=True)
        return False


def _send_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    for celery_app, job_id, queue, countdown in pending:
        send(celery_app, job_id, queue, countdown)


def _drop_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.nested:
        return  # a savepoint rolled back; the outer transaction may still commit
    if session.info.pop(_PENDING_KEY, None):
        log.info("transaction rolled back; nothing enqueued")


def wait_for_end(session: Session, redis_client, job_id, timeout: float) -> str | None:
    """Wait (bounded) until the job is finished; its final status, or None when it still runs. No
    snapshot or connection is held between looks."""
    def ended():
        session.expire_all()
        found = session.get(Job, job_id)
        status = None if found is None else found.status
        session.rollback()
        return status if status in TERMINAL_STATUSES else None

    return doorbell.wait_until(redis_client, job_id, timeout, ended)


def keeps_inline(payload: bytes) -> bool:
    """Whether a job's input of this size is kept in its row (else: the blob store)."""
    return len(payload) <= INLINE_PAYLOAD_BYTES


def open_payload(ctx):
    """A binary stream of the running job's input: its row's payload, or its blob."""
    import io
    if ctx.job.payload is not None:
        return io.BytesIO(ctx.job.payload)
    return ctx.runtime.blobs.open(ctx.job.blob_sha256)
