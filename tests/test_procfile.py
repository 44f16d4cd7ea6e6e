"""Every queue the Celery routes name has a worker line in the Procfile (and the Procfile has the
release, web and beat processes)."""
import re
from pathlib import Path

from config.celery import TASK_ROUTES

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_lines():
    lines = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            lines[name.strip()] = command.strip()
    return lines


def test_every_routed_queue_has_a_worker():
    served = set()
    for name, command in procfile_lines().items():
        if "celery" in command and " worker" in command:
            match = re.search(r"--queues[ =](\S+)", command) or re.search(r"-Q[ =]?(\S+)", command)
            assert match, f"worker line {name} names no queues"
            served.update(match.group(1).split(","))
    routed = {route["queue"] for route in TASK_ROUTES.values()}
    assert routed - served == set(), f"queues without a worker: {routed - served}"


def test_release_web_and_beat_processes():
    lines = procfile_lines()
    assert "fieldsync migrate" in lines["release"]
    assert "gunicorn web.wsgi:app" in lines["web"] and "$PORT" in lines["web"]
    assert "fieldsync scheduler" in lines["beat"]
