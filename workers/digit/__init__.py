"""DIGIT Health workers: the sync-file pipeline (and the form checks it and form publishing use)."""
from __future__ import annotations

from models.digit import SYNC_FILE
from workers.digit.jobs import run_sync_file


def register(registry, settings) -> None:
    registry.add(SYNC_FILE, run_sync_file)
