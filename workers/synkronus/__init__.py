"""Synkronus 1.0.3 workers: the push pipeline."""
from __future__ import annotations

from models.synkronus import PUSH
from workers.synkronus.jobs import run_push


def register(registry, settings) -> None:
    registry.add(PUSH, run_push)
