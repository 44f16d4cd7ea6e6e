"""An export worker killed with SIGKILL mid-export: nothing half-written is ever visible, and the job is
reclaimed after its lease and completes whole. (Its own module: no other worker may listen meanwhile.)"""
import os
import signal
import subprocess
import uuid

import duckdb
import polars as pl
import pytest

from models.db import session_scope
from models.engine import Incoming, apply_chunk, current_version
from models.synkronus import EXPORT_PARQUET
from models.tables import Job
from models.users import ensure_tenant
from tests.conftest import WorkerProcess, wait_for
from workers.api import submit_job
from workers.exports import MANIFEST, run_dir, submit_export
from workers.sweeper import sweep_once

ROWS = 150_000


def _job(real_sessions, job_id):
    with session_scope(real_sessions) as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_a_killed_export_worker_leaves_nothing_half_written(settings, engine, real_sessions, celery_app):
    tenant = f"crash-{uuid.uuid4().hex[:6]}"
    with session_scope(real_sessions) as s:
        ensure_tenant(s, tenant)
    for start in range(0, ROWS, 10_000):
        with session_scope(real_sessions) as s:
            apply_chunk(s, tenant_id=tenant, namespace="synkronus", records=[
                Incoming(position=i, key=f"k{start + i}", record_type=f"t{(start + i) % 3}",
                         data={"i": start + i, "s": "x" * 40, "b": i % 2 == 0, "n": {"deep": i}})
                for i in range(10_000)])
    short = settings.replace(job_lease_seconds=3)
    env = {"JOB_LEASE_SECONDS": "3", "EXPORT_ROW_GROUP_ROWS": "5000"}
    victim = WorkerProcess(short, queues=("exports",), concurrency=1, extra_env=env).start()
    final = run_dir(settings, "x").parent
    try:
        with session_scope(real_sessions) as s:
            job, _ = submit_export(s, celery_app, tenant_id=tenant, created_by="t",
                                   spec={"namespace": "synkronus", "record_types": [], "since_version": 0,
                                         "until": None, "partition_by": ["record_type"]})
        job_id = job.id
        tmp = final / f".tmp-{job_id}-1"
        wait_for(lambda: tmp.exists() and any(tmp.iterdir()), 60, interval=0.02, message=victim.tail())
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
    finally:
        victim.stop()
    assert _job(real_sessions, job_id).status == "RUNNING"
    assert not run_dir(settings, job_id).exists()  # only the temp directory, never a half run
    rescuer = WorkerProcess(short, queues=("exports",), concurrency=1, extra_env=env).start()
    try:
        def swept_and_done():
            sweep_once(celery_app.runtime, celery_app)
            return _job(real_sessions, job_id).status in ("COMPLETED", "FAILED")
        wait_for(swept_and_done, 120, interval=1, message=rescuer.tail())
    finally:
        rescuer.stop()
    done = _job(real_sessions, job_id)
    assert done.status == "COMPLETED" and done.attempts == 2, (done.error_code, done.error_detail)
    manifest = done.result["manifest"]
    assert manifest["rows"] == ROWS
    directory = run_dir(settings, job_id)
    assert (directory / MANIFEST).is_file() and not list(final.glob(f".tmp-{job_id}*"))
    total = 0
    for f in manifest["files"]:
        frame = pl.read_parquet(directory / f["path"])
        count = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)",
                                         [str(directory / f["path"])]).fetchone()[0]
        assert frame.height == count == f["rows"]
        assert frame["_key"].n_unique() == frame.height
        total += frame.height
    assert total == ROWS


@pytest.mark.parametrize("kind", ["engine", "synkronus"])
def test_a_full_disk_fails_the_export_clearly_and_leaves_nothing(kind, settings, engine, real_sessions, celery_app,
                                                                 tmp_path):
    """The worker's data volume is a 1 MiB tmpfs, mounted by the test (which needs root, as CI has; as
    another user it is skipped): ENOSPC mid-export, for the engine's export and for Synkronus's ZIP."""
    volume = tmp_path / "full"
    volume.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(volume)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        pytest.fail(f"could not mount a 1 MiB tmpfs as root: {mounted.stderr.strip()}")
    try:
        assert os.statvfs(volume).f_blocks * os.statvfs(volume).f_frsize <= 1 << 20
        tenant = f"full-{uuid.uuid4().hex[:6]}"
        with session_scope(real_sessions) as s:
            ensure_tenant(s, tenant)
            apply_chunk(s, tenant_id=tenant, namespace="synkronus", records=[
                # random values: incompressible, so the files run well past the volume's 1 MiB
                Incoming(position=i, key=f"k{i}", record_type="t", data={"s": os.urandom(128).hex(), "i": i})
                for i in range(20_000)])
        small = settings.replace(data_dir=volume)
        worker = WorkerProcess(small, queues=("exports",), concurrency=1).start()
        try:
            with session_scope(real_sessions) as s:
                if kind == "engine":
                    job, _ = submit_export(s, celery_app, tenant_id=tenant, created_by="t",
                                           spec={"namespace": "synkronus", "record_types": [], "since_version": 0,
                                                 "until": None, "partition_by": ["record_type"]})
                else:
                    job, _ = submit_job(s, celery_app, tenant_id=tenant, kind=EXPORT_PARQUET,
                                        params={"until": current_version(s, tenant)})
            wait_for(lambda: _job(real_sessions, job.id).status in ("COMPLETED", "FAILED"), 60,
                     message=worker.tail())
        finally:
            worker.stop()
        done = _job(real_sessions, job.id)
        assert done.status == "FAILED" and done.error_code == "disk_full", (done.status, done.error_code,
                                                                             done.error_detail)
        assert "no space left" in done.error_detail
        left = [str(p.relative_to(volume)) for p in volume.rglob("*") if not p.is_dir() and p != worker.log_path]
        assert left == []  # nothing partial left: no run directory, no temp file, no blob (only the worker's log)
        assert not (volume / "exports").exists() or list((volume / "exports").iterdir()) == []
    finally:
        subprocess.run(["umount", str(volume)], capture_output=True)
