"""Synkronus 1.0.3: the dialect's constants (namespace, job kinds)."""
from __future__ import annotations

from config.settings import QUEUE_EXPORTS, QUEUE_INGEST, QUEUE_MAINTENANCE
from models.kinds import JobKind

NAMESPACE = "synkronus"
PUSH = JobKind("synkronus.push", QUEUE_INGEST)
# Removes attachments no record has referenced for SYNKRONUS_ATTACHMENT_GRACE_SECONDS (one job per tenant).
SWEEP_ATTACHMENTS = JobKind("synkronus.sweep_attachments", QUEUE_MAINTENANCE)
# GET /dataexport/parquet: the ZIP of one Parquet file per form type, built into the blob store.
EXPORT_PARQUET = JobKind("synkronus.export_parquet", QUEUE_EXPORTS)
JOB_KINDS = (PUSH, SWEEP_ATTACHMENTS, EXPORT_PARQUET)
