"""Built-in job kinds that are not tied to a dialect.

`probe.<queue>`: an ops check that a worker for a queue is alive and progressing: it walks `steps` steps,
sleeping `sleep` seconds each, committing progress each step, and resumes from its checkpoint when
redelivered (so it also exercises the lifecycle every real pipeline relies on)."""
from __future__ import annotations

import time

from models.kinds import PROBES


def probe(ctx):
    steps = int(ctx.job.params.get("steps", 1))
    pause = float(ctx.job.params.get("sleep", 0))
    start = ctx.job.checkpoint
    for step in range(start, steps):
        time.sleep(pause)
        with ctx.session() as session:
            ctx.progress(session, done=step + 1, total=steps, checkpoint=step + 1,
                         counts={"steps": step + 1, "attempt": ctx.job.attempts})
    return {"steps": steps, "resumed_from": start}


def register(registry, settings) -> None:
    for kind in PROBES.values():
        registry.add(kind, probe)
