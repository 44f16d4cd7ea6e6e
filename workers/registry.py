"""The job kinds a worker can run: each kind (a models.kinds.JobKind constant) maps to the pipeline
function that runs it. Built once per process by workers.dialects.build_registry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from models.kinds import JobKind

Pipeline = Callable  # run(ctx: JobContext) -> dict | None (the result stored on the job)


@dataclass(frozen=True)
class Registered:
    kind: JobKind
    run: Pipeline


Periodic = Callable  # hook(runtime, celery_app): run by the scheduler each period (it decides what is due)


class Registry:
    def __init__(self):
        self._kinds: dict[str, Registered] = {}
        self._periodic: list[Periodic] = []

    def add(self, kind: JobKind, run: Pipeline) -> None:
        if kind.name in self._kinds and self._kinds[kind.name].run is not run:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = Registered(kind=kind, run=run)

    def add_periodic(self, hook: Periodic) -> None:
        """A dialect's periodic work (e.g. submitting a sweep job), called by the scheduler each period."""
        if hook not in self._periodic:
            self._periodic.append(hook)

    def periodic(self) -> list[Periodic]:
        return list(self._periodic)

    def get(self, name: str) -> Registered | None:
        return self._kinds.get(name)

    def kinds(self) -> list[JobKind]:
        return [entry.kind for entry in self._kinds.values()]

    def queues(self) -> set[str]:
        return {entry.kind.queue for entry in self._kinds.values()}
