"""config.metrics.clear_directory removes the files of processes that are gone, never a live one's."""
from __future__ import annotations

import os
import subprocess
import sys

from config.metrics import clear_directory
from config.settings import Settings


def test_clear_directory_keeps_live_processes_files(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    live = tmp_path / f"counter_{os.getpid()}.db"
    dead = tmp_path / f"counter_{gone}.db"
    other = tmp_path / "histogram_unknown.db"
    for path in (live, dead, other):
        path.write_bytes(b"x")
    clear_directory(Settings(metrics_dir=tmp_path))
    assert live.exists() and not dead.exists() and not other.exists()
