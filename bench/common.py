"""Shared bench helpers: process RSS sampling, percentiles, raw COPY baseline."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[index]


def rss_of(match: str) -> int:
    """Summed RSS (bytes) of processes whose command line contains `match`."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if match in cmdline and "bench/" not in cmdline:
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, patterns: dict[str, str], interval: float = 0.25):
        super().__init__(daemon=True)
        self.patterns, self.interval = patterns, interval
        self.peak = {name: 0 for name in patterns}
        self.current = dict(self.peak)
        self._stop = threading.Event()

    def run(self):
        while not self._stop.is_set():
            for name, pattern in self.patterns.items():
                value = rss_of(pattern)
                self.current[name] = value
                self.peak[name] = max(self.peak[name], value)
            time.sleep(self.interval)

    def snapshot(self) -> dict:
        return dict(self.current)

    def stop(self):
        self._stop.set()


def raw_copy_rate(database_url: str, rows_csv: io.StringIO, n: int, like_table: str = "records") -> float:
    """COPY the same rows into an empty copy of `like_table` (same indexes); rows/s."""
    import psycopg2
    conn = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS bench_copy; CREATE TABLE bench_copy (LIKE {like_table} INCLUDING ALL)")
            conn.commit()
            rows_csv.seek(0)
            started = time.perf_counter()
            cur.copy_expert("COPY bench_copy FROM STDIN WITH (FORMAT csv)", rows_csv)
            conn.commit()
            elapsed = time.perf_counter() - started
            cur.execute("DROP TABLE bench_copy")
            conn.commit()
        return n / elapsed
    finally:
        conn.close()
