"""The `fieldsync` command: serve, migrate, worker, scheduler, user, jobs and export administration."""
from __future__ import annotations

import sys
import time

import click

from config import load_settings
from config.logging import configure_logging
from config.settings import ALL_QUEUES, MissingSecret, require_secret
from models.ids import parse_uuid
from web.clitools import cli_sessions as _sessions
from web.clitools import cli_settings as _settings
from web.dialects import cli_groups
from web.exportcli import group as export_group


@click.group()
def main():
    """fieldsync: a sync server for offline-first field data collection."""


def _server_settings():
    """Settings of a server process (worker, scheduler): it refuses to start without JWT_SECRET."""
    try:
        return require_secret(_settings())
    except MissingSecret as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", default=None, help="where data lives (default ./var, or FIELDSYNC_DATA_DIR)")
def serve(host, port, data_dir):
    """Run everything: engines (embedded unless URLs are set), web, workers and scheduler."""
    from web.serve import serve as run
    settings = _settings(data_dir, need_urls=False)
    configure_logging(settings)
    try:
        code = run(settings, host, port, settings.data_dir, echo=lambda m: click.echo(m, err=True))
    except MissingSecret as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.command()
def migrate():
    """Apply database migrations (the Procfile's release step)."""
    from models.db import make_engine
    from models.migrate import upgrade
    settings = _settings(need_urls=False)
    if settings.database_url is None:
        raise click.ClickException("DATABASE_URL is not set")
    upgrade(make_engine(settings.database_url, pool_size=1))
    click.echo("migrations applied")


@main.command()
@click.option("--queues", "-Q", default=",".join(ALL_QUEUES), show_default=True)
@click.option("--concurrency", "-c", default=2, show_default=True, type=int)
def worker(queues, concurrency):
    """Run a Celery worker for the given queues."""
    from workers.app import make_celery
    settings = _server_settings()
    configure_logging(settings)
    unknown = set(queues.split(",")) - set(ALL_QUEUES)
    if unknown:
        raise click.ClickException(f"unknown queue(s): {', '.join(sorted(unknown))}")
    app = make_celery(settings)
    app.worker_main(["worker", "--queues", queues, "--concurrency", str(concurrency), "--loglevel", "INFO",
                     "--without-gossip", "--without-mingle"])


@main.command()
def scheduler():
    """Run the scheduler: the sweeper and periodic maintenance (the Procfile's beat line)."""
    import signal

    from workers.app import make_celery
    from workers.sweeper import run_scheduler
    settings = _server_settings()
    configure_logging(settings)
    app = make_celery(settings)
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(flag=True))
    signal.signal(signal.SIGINT, lambda *a: stop.update(flag=True))
    run_scheduler(app.runtime, app, stop=lambda: stop["flag"])


@main.group()
def user():
    """Manage users."""


@user.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["read-only", "read-write", "admin", "analyst"]), default="read-write",
              show_default=True)
@click.option("--tenant", default="default", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def user_create(username, role, tenant, password):
    from models.db import session_scope
    from models.users import UserExists, create_user
    settings = _settings()
    try:
        with session_scope(_sessions(settings)) as session:
            create_user(session, username=username, password=password, role=role, tenant_id=tenant,
                        rounds=settings.bcrypt_rounds)
    except UserExists:
        raise click.ClickException(f"user {username!r} already exists") from None
    click.echo(f"created {username} ({role}) in tenant {tenant}")


@user.command("list")
@click.option("--tenant", default=None)
def user_list(tenant):
    from models.db import session_scope
    from models.users import list_users
    with session_scope(_sessions(_settings())) as session:
        for u in list_users(session, tenant):
            flag = "\tsystem" if u.is_system else ""
            click.echo(f"{u.username}\t{u.role}\t{u.tenant_id}{flag}")


@user.command("delete")
@click.argument("username")
def user_delete(username):
    from models.db import session_scope
    from models.users import LastSystemAdmin, delete_user
    try:
        with session_scope(_sessions(_settings())) as session:
            if not delete_user(session, username):
                raise click.ClickException(f"no user {username!r}")
    except LastSystemAdmin:
        raise click.ClickException(f"{username!r} is the last system admin; create another one first") from None
    click.echo(f"deleted {username}")


@user.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def user_set_password(username, password):
    from models.db import session_scope
    from models.users import get_by_username, set_password
    settings = _settings()
    with session_scope(_sessions(settings)) as session:
        found = get_by_username(session, username)
        if found is None:
            raise click.ClickException(f"no user {username!r}")
        set_password(session, found, password, settings.bcrypt_rounds)
    click.echo(f"password changed for {username}")


@main.group()
def jobs():
    """Inspect jobs."""


@jobs.command("list")
@click.option("--status", default=None)
@click.option("--limit", default=20, show_default=True)
def jobs_list(status, limit):
    from sqlalchemy import select

    from models.db import session_scope
    from models.tables import Job
    with session_scope(_sessions(_settings())) as session:
        stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if status:
            stmt = stmt.where(Job.status == status.upper())
        for j in session.execute(stmt).scalars():
            total = j.progress_total if j.progress_total is not None else "?"
            click.echo(f"{j.id}\t{j.tenant_id}\t{j.kind}\t{j.status}\t{j.progress_done}/{total}\t"
                       f"{j.created_at:%Y-%m-%d %H:%M:%S}\t{j.error_code or ''}")


@jobs.command("watch")
@click.argument("job_id")
@click.option("--interval", default=0.5, show_default=True)
def jobs_watch(job_id, interval):
    """Show a live progress bar until the job ends."""
    from models.db import session_scope
    from models.tables import TERMINAL_STATUSES, Job
    sessions = _sessions(_settings())
    parsed = parse_uuid(job_id)
    if parsed is None:
        raise click.ClickException("not a job id")
    while True:
        with session_scope(sessions) as session:
            job = session.get(Job, parsed)
            if job is None:
                raise click.ClickException(f"no job {job_id}")
            done, total, status = job.progress_done, job.progress_total, job.status
            error = f" {job.error_code}: {job.error_detail}" if job.error_code else ""
        width = 40
        fraction = (done / total) if total else (1.0 if status == "COMPLETED" else 0.0)
        bar = "#" * int(width * min(1.0, fraction))
        click.echo(f"\r[{bar:<{width}}] {100 * fraction:5.1f}% {done}/{total if total is not None else '?'} "
                   f"{status:<9}", nl=False)
        if status in TERMINAL_STATUSES:
            click.echo(error)
            sys.exit(0 if status == "COMPLETED" else 1)
        time.sleep(interval)


@jobs.command("probe")
@click.option("--queue", type=click.Choice(list(ALL_QUEUES)), default="ingest", show_default=True)
@click.option("--steps", default=5, show_default=True)
@click.option("--tenant", default="default", show_default=True)
def jobs_probe(queue, steps, tenant):
    """Send a probe job through a queue (checks that its worker is alive); prints the job id."""
    from models.db import session_scope
    from models.kinds import PROBES
    from models.users import ensure_tenant
    from workers.api import submit_job
    from workers.app import make_celery
    settings = _settings()
    app = make_celery(settings)
    with session_scope(_sessions(settings)) as session:
        ensure_tenant(session, tenant)
        job, _ = submit_job(session, app, tenant_id=tenant, kind=PROBES[queue],
                            params={"steps": steps, "sleep": 0.2})
        job_id = job.id
    click.echo(str(job_id))


@main.group()
def ops():
    """The ops overview in the terminal."""


def _bar(done, total, width=30) -> str:
    fraction = min(1.0, done / total) if total else 0.0
    return f"[{'#' * int(width * fraction):<{width}}] {100 * fraction:5.1f}% {done}/{total if total is not None else '?'}"


@ops.command("status")
@click.option("--tenant", default=None, help="only this tenant and the tenants below it")
def ops_status(tenant):
    """Workers (alive or dead), queues (waiting, running, oldest), running jobs with bars, failures."""
    from models.db import session_scope
    from web.ops.overview import overview
    from workers.runtime import redis_client
    settings = _settings()
    with session_scope(_sessions(settings)) as session:
        data = overview(session, redis_client(settings.redis_url), settings, tenant)
    click.echo("WORKERS" + ("" if data["redis_ok"] else "  (Redis unreachable)"))
    for w in data["workers"]:
        state = "alive" if w["alive"] else "DEAD "
        jobs = ", ".join(j["id"][:8] for j in w["jobs"]) or "-"
        click.echo(f"  {state}  {w['hostname']:<32} queues={','.join(w['queues']) or '-'} processes={w['processes']} "
                   f"jobs={jobs} last beat {w['age']:.0f} s ago")
    if not data["workers"]:
        click.echo("  no worker has sent a heartbeat")
    click.echo("QUEUES")
    for q in data["queues"]:
        oldest = f"{q['oldest_age_seconds']:.0f} s" if q["oldest_age_seconds"] is not None else "-"
        click.echo(f"  {q['queue']:<12} waiting={q['queued']:<6} running={q['running']:<4} oldest waiting={oldest}")
    click.echo("RUNNING JOBS")
    for j in data["running"]:
        click.echo(f"  {j['id']} {j['kind']:<24} {j['tenant']:<12} {_bar(j['progress']['done'], j['progress']['total'])}")
    if not data["running"]:
        click.echo("  none")
    minute = data["applied_per_minute"][-1][1] if data["applied_per_minute"] else 0
    click.echo(f"FAILURES (24 h): {data['failures_24h']}    RECORDS APPLIED THIS MINUTE: {minute}    "
               f"DEVICES: {data['devices']['total']} ({data['devices']['silent']} silent)")

main.add_command(export_group)

for _group in cli_groups(load_settings().dialects):
    main.add_command(_group)

if __name__ == "__main__":
    main()
