"""Synkronus 1.0.3 workers: the push pipeline and the sweep of unreferenced attachments."""
from __future__ import annotations

from models.synkronus import PUSH, SWEEP_ATTACHMENTS
from workers.synkronus.attachments import run_sweep, schedule_sweep
from workers.synkronus.jobs import run_push


def register(registry, settings) -> None:
    registry.add(PUSH, run_push)
    registry.add(SWEEP_ATTACHMENTS, run_sweep)
    registry.add_periodic(schedule_sweep)
