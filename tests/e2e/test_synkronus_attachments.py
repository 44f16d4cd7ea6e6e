"""Synkronus attachments on committed sessions: concurrent uploads each take their own tenant version (in
commit order, with the counter pushes use), and a race on one id lets exactly one upload through."""
import io
import threading
import uuid

from sqlalchemy import text

from models.db import session_scope
from tests.factories import bearer, make_user


def _put(client, headers, attachment_id, data):
    return client.put(f"/attachments/{attachment_id}", headers=headers, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(data), "f.bin", "image/jpeg")})


def _run_all(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)


def test_concurrent_uploads_take_distinct_versions_and_one_id_wins_once(live_app, real_sessions):
    tenant = f"att-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        h = bearer(live_app, make_user(s, tenant=tenant))
    statuses, versions, lock = [], [], threading.Lock()

    def uploader(n):
        def run():
            client = live_app.test_client()
            for i in range(5):
                r = _put(client, h, f"w{n}-{i}.jpg", uuid.uuid4().bytes * 100)
                with lock:
                    statuses.append(r.status_code)
                    versions.append(r.get_json().get("version"))
        return run

    race = []

    def racer():
        r = _put(live_app.test_client(), h, "same.jpg", uuid.uuid4().bytes * 100)
        with lock:
            race.append(r.status_code)

    _run_all([uploader(n) for n in range(6)] + [racer for _ in range(6)])
    assert statuses == [200] * 30
    assert sorted(race) == [200] + [409] * 5
    with session_scope(real_sessions) as s:
        counter = s.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t"), {"t": tenant}).scalar()
        ops = s.execute(text("SELECT version FROM synkronus_attachment_operations WHERE tenant_id = :t "
                             "ORDER BY version"), {"t": tenant}).scalars().all()
    assert len(set(versions)) == 30
    # 31 creates, one version each, no gaps and none lost: the counter row is taken under a lock.
    assert ops == list(range(2, 33)) and counter == 32
    manifest = live_app.test_client().post("/attachments/manifest", json={"client_id": "c", "since_version": 0},
                                           headers=h).get_json()
    assert manifest["current_version"] == 32 and manifest["operation_count"]["download"] == 31
    assert [op["version"] for op in manifest["operations"]] == list(range(2, 33))


class _Server:
    """The app on a real socket (a thread of Werkzeug's server), to cut a request off mid-body."""

    def __init__(self, app):
        from werkzeug.serving import make_server
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(10)

    def send_half(self, method: str, path: str, headers: dict, body: bytes, declared: int) -> None:
        import socket
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {declared}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        try:
            sock.recv(65536)
        except OSError:
            pass
        sock.close()


def test_a_cut_off_upload_leaves_no_attachment_and_a_chunk_keeps_what_arrived(live_app, real_sessions, settings):
    import time
    tenant = f"cut-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        h = bearer(live_app, make_user(s, tenant=tenant))
    client = live_app.test_client()
    data = uuid.uuid4().bytes * 20_000  # 320 kB
    with _Server(live_app) as server:
        boundary = "b0undary"
        part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        server.send_half("PUT", "/attachments/cut.jpg",
                         {**h, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                         part[:len(part) // 2], len(part))
        upload_id = client.post("/attachments/uploads", json={"attachment_id": "chunked.jpg", "size": len(data)},
                                headers=h).get_json()["upload_id"]
        server.send_half("PATCH", f"/attachments/uploads/{upload_id}", {**h, "Upload-Offset": "0"},
                         data[:100_000], len(data))
        time.sleep(0.5)
    assert client.head("/attachments/cut.jpg", headers=h).status_code == 404
    with session_scope(real_sessions) as s:
        assert s.execute(text("SELECT count(*) FROM synkronus_attachments WHERE tenant_id = :t"),
                         {"t": tenant}).scalar() == 0
    assert not list((settings.blob_dir / "tmp").glob("up-*"))  # no half-written blob left behind
    offset = int(client.head(f"/attachments/uploads/{upload_id}", headers=h).headers["Upload-Offset"])
    assert offset == 100_000
    url = f"/attachments/uploads/{upload_id}"
    assert client.patch(url, data=data[offset:], headers={**h, "Upload-Offset": str(offset)}).status_code == 200
    assert client.post(f"{url}/finish", json={}, headers=h).status_code == 200
    assert client.get("/attachments/chunked.jpg", headers=h).data == data


def test_the_scheduler_sweeps_unreferenced_attachments_through_a_worker(settings, real_sessions, celery_app,
                                                                        live_app, redis_client):
    import time

    from models.tables import Job
    from tests.conftest import WorkerProcess, wait_for
    from workers.schedule import run_due
    from workers.synkronus.attachments import schedule_sweep

    tenant = f"sweep-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        h = bearer(live_app, make_user(s, tenant=tenant))
    client = live_app.test_client()
    assert _put(client, h, "orphan.jpg", b"o" * 100).status_code == 200

    def sweep_jobs():
        with session_scope(real_sessions) as s:
            return s.query(Job).filter(Job.tenant_id == tenant, Job.kind == "synkronus.sweep_attachments").all()

    worker = WorkerProcess(settings, queues=("maintenance",), concurrency=1,
                           extra_env={"SYNKRONUS_ATTACHMENT_GRACE_SECONDS": "0"}).start()
    try:
        run_due(celery_app.runtime, celery_app)  # the scheduler's periodic hook submits this period's job
        wait_for(lambda: [j for j in sweep_jobs() if j.status == "COMPLETED"], 60, message=worker.tail())
        assert client.head("/attachments/orphan.jpg", headers=h).status_code == 200  # marked, not yet gone
        run_due(celery_app.runtime, celery_app)
        assert len(sweep_jobs()) == 1  # once per period
        time.sleep(0.05)
        assert schedule_sweep(celery_app.runtime, celery_app, now=time.time() + 7200) >= 1
        wait_for(lambda: len([j for j in sweep_jobs() if j.status == "COMPLETED"]) == 2, 60, message=worker.tail())
    finally:
        worker.stop()
    assert [j.result["swept"] for j in sorted(sweep_jobs(), key=lambda j: j.created_at)] == [0, 1]
    assert client.head("/attachments/orphan.jpg", headers=h).status_code == 404


def test_a_web_process_killed_mid_upload_leaves_no_attachment_and_no_blob(settings, real_sessions, live_app):
    """A real gunicorn worker is SIGKILLed while an attachment streams in: nothing of it is visible after
    (no attachment row, no blob under its hash), and the same upload then goes through whole."""
    import hashlib
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import psutil
    import requests

    from tests.conftest import ROOT, worker_env
    from web.embedded import free_port

    tenant = f"kill-{uuid.uuid4().hex[:8]}"
    with session_scope(real_sessions) as s:
        h = bearer(live_app, make_user(s, tenant=tenant))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "web.wsgi:app", "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--worker-class", "gthread", "--threads", "2", "--timeout", "60"],
                            env=worker_env(settings), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/version", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        data = os.urandom(4 << 20)
        sha = hashlib.sha256(data).hexdigest()
        boundary = "k1llb0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n"
                "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = ["PUT /attachments/killed.jpg HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}",
                f"Content-Type: multipart/form-data; boundary={boundary}", f"Authorization: {h['Authorization']}"]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[:len(body) // 2])
        time.sleep(1.0)  # the worker is now streaming the first half into a temp file
        workers = psutil.Process(proc.pid).children()
        assert workers, "no gunicorn worker"
        for worker in workers:
            os.kill(worker.pid, signal.SIGKILL)
        sock.close()
        with session_scope(real_sessions) as s:
            assert s.execute(text("SELECT count(*) FROM synkronus_attachments WHERE tenant_id = :t"),
                             {"t": tenant}).scalar() == 0
        assert not (settings.blob_dir / sha[:2] / sha[2:4] / sha).exists()
        # gunicorn starts a new worker; the client sends the file again and it is stored whole
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.put(f"http://127.0.0.1:{port}/attachments/killed.jpg", headers=h, timeout=30,
                                 files={"file": ("f", data, "image/jpeg")})
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "no new gunicorn worker"
                time.sleep(0.3)
        assert r.status_code in (200, 201), r.text
        got = requests.get(f"http://127.0.0.1:{port}/attachments/killed.jpg", headers=h, timeout=30)
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
