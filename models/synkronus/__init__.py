"""Synkronus 1.0.3: the dialect's constants (namespace, job kind)."""
from __future__ import annotations

from config.settings import QUEUE_INGEST
from models.kinds import JobKind

NAMESPACE = "synkronus"
PUSH = JobKind("synkronus.push", QUEUE_INGEST)
JOB_KINDS = (PUSH,)
