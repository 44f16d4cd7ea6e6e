"""`fieldsync export`: run an export here with a live progress bar (`run`), and manage export schedules
(`schedule add|list|pause|remove`)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import click

from models.dialects import namespaces
from web.clitools import cli_sessions, cli_settings

PARTITIONS = click.Choice(["record_type", "day"])


@click.group("export")
def group():
    """Export a namespace's records to Parquet files, now or on a schedule."""


def _spec(settings, namespace, record_types, since, until, partition_by, flat):
    from workers.exports import SpecError, parse_spec
    body = {"namespace": namespace, "record_types": list(record_types), "since_version": since,
            "partition_by": [] if flat else (list(partition_by) or ["record_type"])}
    if until is not None:
        body["until"] = until
    try:
        return parse_spec(body, namespaces(settings.dialects))
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None


@group.command("run")
@click.option("--namespace", required=True, help="the records' namespace (synkronus, msupply, digit, …)")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="a new or empty directory")
@click.option("--tenant", default="default", show_default=True)
@click.option("--record-type", "record_types", multiple=True, help="only these record types (repeatable)")
@click.option("--since", "since", default=0, show_default=True, type=int, help="versions after this one")
@click.option("--until", "until", default=None, type=int, help="versions up to this one (default: now)")
@click.option("--partition-by", "partition_by", multiple=True, type=PARTITIONS,
              help="split files by record_type and/or day (default: record_type)")
@click.option("--single-file", "flat", is_flag=True, help="one file for all record types")
def run(namespace, out, tenant, record_types, since, until, partition_by, flat):
    """Write the Parquet files and manifest.json of one export into --out (landed whole: written into a
    temp directory beside it, then renamed)."""
    from models.db import session_scope
    from models.engine import current_version
    from workers.exports import (
        ENGINE_LAYOUT, MANIFEST, export_files, manifest_of, scope_of, write_json,
    )
    settings = cli_settings()
    spec = _spec(settings, namespace, record_types, since, until, partition_by, flat)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty")
    sessions = cli_sessions(settings)
    with session_scope(sessions) as session:
        if spec["until"] is None:
            spec["until"] = max(current_version(session, tenant), spec["since_version"])
    scope = scope_of(tenant, spec)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    bar = {"bar": None, "shown": 0}

    def progress(done, total):
        if bar["bar"] is None:
            bar["bar"] = click.progressbar(length=max(total, 1), label=f"exporting {total} rows", show_pos=True)
            bar["bar"].__enter__()
        bar["bar"].update(done - bar["shown"])
        bar["shown"] = done
    try:
        result = export_files(sessions, scope, ENGINE_LAYOUT, spec["partition_by"], tmp,
                              max_columns=settings.export_max_columns, row_group_rows=settings.export_row_group_rows,
                              progress=progress)
        if bar["bar"] is not None:
            bar["bar"].__exit__(None, None, None)
        created = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        manifest = manifest_of(result, job_id=None, tenant_id=tenant, scope=scope, spec=spec, created_at=created,
                               max_columns=settings.export_max_columns)
        write_json(tmp / MANIFEST, manifest)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    click.echo(f"wrote {len(result['files'])} file(s), {result['rows']} rows, versions "
               f"{scope.since + 1}..{scope.until} to {out}")


@group.group("schedule")
def schedule():
    """Manage export schedules (run by `fieldsync scheduler`)."""


@schedule.command("add")
@click.argument("name")
@click.option("--cron", required=True, help='five fields, UTC, e.g. "0 2 * * *"')
@click.option("--namespace", required=True)
@click.option("--target", required=True, help="a directory inside EXPORT_TARGET_ROOT")
@click.option("--tenant", default="default", show_default=True)
@click.option("--retention", default=7, show_default=True, type=click.IntRange(1, 1000))
@click.option("--record-type", "record_types", multiple=True)
@click.option("--partition-by", "partition_by", multiple=True, type=PARTITIONS)
def schedule_add(name, cron, namespace, target, tenant, retention, record_types, partition_by):
    from models import exports as store
    from models.db import session_scope
    from models.users import ensure_tenant
    from workers.exports import SpecError, confine_target, next_fire, parse_cron
    settings = cli_settings()
    spec = _spec(settings, namespace, record_types, 0, None, partition_by, False)
    try:
        cron = parse_cron(cron)
        target = confine_target(settings.export_root, target)
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with session_scope(cli_sessions(settings)) as session:
            ensure_tenant(session, tenant)
            made = store.create_schedule(session, tenant_id=tenant, name=name, cron=cron, spec=spec, target=target,
                                         retention=retention, created_by="cli",
                                         next_run_at=next_fire(cron, dt.datetime.now(dt.timezone.utc)))
            next_run = made.next_run_at
    except store.ScheduleExists:
        raise click.ClickException(f"a schedule named {name!r} exists in tenant {tenant}") from None
    click.echo(f"added {name} ({cron}) → {settings.export_root / target}; next run {next_run:%Y-%m-%d %H:%M}Z")


@schedule.command("list")
@click.option("--tenant", default=None)
def schedule_list(tenant):
    from models import exports as store
    from models.db import session_scope
    with session_scope(cli_sessions(cli_settings())) as session:
        for s in store.list_schedules(session, tenant):
            state = "paused" if s.paused else f"next {s.next_run_at:%Y-%m-%d %H:%M}Z"
            click.echo(f"{s.name}\t{s.tenant_id}\t{s.cron}\t{s.spec.get('namespace')}\t{s.target}\t{state}\t"
                       f"{s.last_job_id or ''}")


def _find(session, tenant, name):
    from models import exports as store
    found = store.find_schedule(session, tenant, name)
    if found is None:
        raise click.ClickException(f"no schedule {name!r} in tenant {tenant}")
    return found


@schedule.command("pause")
@click.argument("name")
@click.option("--tenant", default="default", show_default=True)
@click.option("--resume", is_flag=True, help="resume a paused schedule instead")
def schedule_pause(name, tenant, resume):
    from models.db import session_scope
    from workers.exports import next_fire
    with session_scope(cli_sessions(cli_settings())) as session:
        found = _find(session, tenant, name)
        found.paused = not resume
        if resume:
            found.next_run_at = next_fire(found.cron, dt.datetime.now(dt.timezone.utc))
    click.echo(f"{'resumed' if resume else 'paused'} {name}")


@schedule.command("remove")
@click.argument("name")
@click.option("--tenant", default="default", show_default=True)
def schedule_remove(name, tenant):
    from models.db import session_scope
    with session_scope(cli_sessions(cli_settings())) as session:
        session.delete(_find(session, tenant, name))
    click.echo(f"removed {name}")
