"""mSupply workers: the push pipeline and the initial dump."""
from __future__ import annotations

from models.msupply import INITIAL_DUMP, PUSH
from workers.msupply.jobs import initial_dump, push


def register(registry, settings) -> None:
    registry.add(PUSH, push)
    registry.add(INITIAL_DUMP, initial_dump)
