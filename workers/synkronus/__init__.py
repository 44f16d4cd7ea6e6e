"""Synkronus 1.0.3 workers: the push pipeline, the sweep of unreferenced attachments and the Parquet
export ZIP."""
from __future__ import annotations

from models.synkronus import EXPORT_PARQUET, PUSH, SWEEP_ATTACHMENTS
from workers.synkronus.attachments import run_sweep, schedule_sweep
from workers.synkronus.exports import run_export_parquet
from workers.synkronus.jobs import run_push


def register(registry, settings) -> None:
    registry.add(PUSH, run_push)
    registry.add(SWEEP_ATTACHMENTS, run_sweep)
    registry.add(EXPORT_PARQUET, run_export_parquet)
    registry.add_periodic(schedule_sweep)
