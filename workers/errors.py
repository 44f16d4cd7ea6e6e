"""How a pipeline ends other than by returning: the runner maps each to the job's fate."""
from __future__ import annotations


class JobFailed(Exception):
    """A final failure: invalid input or a broken payload. Recorded on the job, never retried."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class JobLost(Exception):
    """The job is no longer ours (cancelled, or reclaimed after our lease ran out)."""


class TransientError(Exception):
    """Worth another try later (database restarting, deadlock, connection cut)."""
