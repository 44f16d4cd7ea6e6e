"""`fieldsync serve` in embedded mode: answers /health, and SIGINT leaves no process behind."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from web.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def _procs_using(path: str):
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if path in cmdline:
            found.append(proc.info["pid"])
    return found


def _post(url, body, token=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, json.loads(r.read())


@pytest.mark.timeout(300)
def test_serve_embedded_answers_health_and_stops_clean(tmp_path):
    data_dir = tmp_path / "serve-data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_USERNAME",
                                                             "ADMIN_PASSWORD")}
    env["PYTHONPATH"] = str(ROOT)
    _run_once(tmp_path, data_dir, port, env, first=True)
    # a second serve on the same data directory keeps what the first one stored
    _run_once(tmp_path, data_dir, port, env, first=False)


def _run_once(tmp_path, data_dir, port, env, first):
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "web.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, (tmp_path / "serve.log").read_text()[-3000:]
        assert body["status"] == "ok"
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert _procs_using(str(data_dir)), "the embedded servers should run under the data dir"
        output = (tmp_path / "serve.log").read_text()
        assert "WARNING: the first admin is admin/admin" in output
        if first:
            _, tokens = _post(f"http://127.0.0.1:{port}/auth/login", {"username": "admin", "password": "admin"})
            status, _ = _post(f"http://127.0.0.1:{port}/users/create",
                              {"username": "kept", "password": "kept-pw", "role": "read-only"}, tokens["token"])
            assert status == 201
        else:
            status, _ = _post(f"http://127.0.0.1:{port}/auth/login", {"username": "kept", "password": "kept-pw"})
            assert status == 200
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        stop_seconds = time.monotonic() - started
        log.close()
    assert proc.returncode == 0
    assert stop_seconds < 15
    time.sleep(0.5)
    assert _procs_using(str(data_dir)) == []
    # nothing left listening on our port either
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
