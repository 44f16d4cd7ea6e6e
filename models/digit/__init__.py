"""DIGIT Health sync: the dialect's constants (namespace, job kind)."""
from __future__ import annotations

from config.settings import QUEUE_INGEST
from models.kinds import JobKind

NAMESPACE = "digit"
SYNC_FILE = JobKind("digit.sync_file", QUEUE_INGEST)
JOB_KINDS = (SYNC_FILE,)
