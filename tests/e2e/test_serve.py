"""`fieldsync serve` in embedded mode: answers /health, signs with a secret of its own data directory,
creates the first admin once with a password shown once, and SIGINT leaves no process behind. With real
servers, `serve` and the Procfile's web and worker processes refuse to start without JWT_SECRET."""
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jwt
import psutil
import pytest

from web.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_DEFAULT_KEY = "change-me-in-production"
FIRST_ADMIN = re.compile(r"created the first admin user 'admin'; its password \(shown only now\): (\S+)")


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


def _call(url, body=None, token=None, method=None):
    """(status, json body) of a request; HTTP errors are answers too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "ADMIN_USERNAME", "ADMIN_PASSWORD", "JWT_SECRET")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:The HMAC key is")  # the forged token's short public key
def test_serve_embedded_answers_health_and_stops_clean(tmp_path):
    data_dir = tmp_path / "serve-data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = {}

    def first(output):
        match = FIRST_ADMIN.search(output)
        assert match, output[-3000:]
        password = state["password"] = match.group(1)
        assert password != "admin" and len(password) >= 12
        assert _call(f"{base}/auth/login", {"username": "admin", "password": "admin"})[0] == 401
        status, tokens = _call(f"{base}/auth/login", {"username": "admin", "password": password})
        assert status == 200
        state["token"] = tokens["token"]
        status, _ = _call(f"{base}/users/create", {"username": "kept", "password": "kept-pw", "role": "read-only"},
                          tokens["token"])
        assert status == 201
        # the signing key is the data directory's own, readable by its owner only
        secret_file = data_dir / "jwt_secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32 and secret != PUBLIC_DEFAULT_KEY
        claims = jwt.decode(tokens["token"], secret, algorithms=["HS256"])
        # an admin token forged with the public default key is refused
        forged = jwt.encode(claims, PUBLIC_DEFAULT_KEY, algorithm="HS256")
        assert _call(f"{base}/users", token=forged)[0] == 401
        assert _call(f"{base}/users", token=tokens["token"])[0] == 200

    def second(output):
        # the users table is not empty: no admin is created, even under another name, and no password shown
        assert "created the first admin" not in output and state["password"] not in output
        assert _call(f"{base}/auth/login", {"username": "other", "password": "other-password"})[0] == 401
        assert _call(f"{base}/auth/login", {"username": "kept", "password": "kept-pw"})[0] == 200
        # the secret was kept: a token of the first start still works
        assert _call(f"{base}/users", token=state["token"])[0] == 200

    _run_once(tmp_path, data_dir, port, _clean_env(), first)
    _run_once(tmp_path, data_dir, port, _clean_env(ADMIN_USERNAME="other", ADMIN_PASSWORD="other-password"), second)


def _run_once(tmp_path, data_dir, port, env, check):
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
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
        assert body is not None, log_path.read_text()[-3000:]
        assert body["status"] == "ok"
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert _procs_using(str(data_dir)), "the embedded servers should run under the data dir"
        check(log_path.read_text())
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


def _refused(argv, env, cwd):
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{argv[2:5]} kept running without JWT_SECRET:\n{output.decode(errors='replace')[-2000:]}")
    return proc.returncode, output.decode(errors="replace")


@pytest.mark.timeout(150)
def test_server_processes_with_real_servers_refuse_to_start_without_jwt_secret(tmp_path, settings):
    env = _clean_env(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
                     FIELDSYNC_DATA_DIR=str(tmp_path / "data"))
    port = free_port()
    for argv in ([sys.executable, "-m", "web.cli", "serve", "--port", str(port)],
                 [sys.executable, "-m", "gunicorn", "web.wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                 [sys.executable, "-m", "celery", "-A", "workers.celery_main", "worker", "--queues", "probe-none",
                  "--without-gossip", "--without-mingle", "--without-heartbeat"],
                 [sys.executable, "-m", "web.cli", "worker", "--queues", "ingest"],
                 [sys.executable, "-m", "web.cli", "scheduler"]):
        code, output = _refused(argv, env, tmp_path)
        assert code != 0 and "JWT_SECRET is not set" in output, output[-2000:]
    # nothing was created for the refused serve (no embedded server, no secret file)
    assert not (tmp_path / "data" / "jwt_secret").exists()
    # with the secret the web entry point builds its app
    ok = subprocess.run([sys.executable, "-c", "import web.wsgi"], env={**env, "JWT_SECRET": "x" * 40},
                        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr[-2000:]


@pytest.mark.timeout(60)
def test_a_child_that_keeps_dying_is_restarted_with_growing_delays_and_logged():
    from web.serve import Child
    child = Child("flaky", [sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ))
    child.start()
    said, starts = [], [time.monotonic()]
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        before = child.proc
        child.supervise(time.monotonic(), said.append)
        if child.proc is not before:
            starts.append(time.monotonic())
        time.sleep(0.05)
    child.kill_group()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # at once the first time, then about 1, 2, 4 s apart
    assert len(gaps) in (3, 4), gaps
    assert gaps[0] < 1.0 and 0.9 < gaps[1] < 2.5 and 1.9 < gaps[2] < 3.8 and gaps[0] < gaps[1] < gaps[2], gaps
    assert said[0] == "flaky exited (code 3); restarting it" and "flaky restarted" in said
    assert any("restarting it in 2 s" in line for line in said), said
