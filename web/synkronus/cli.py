"""`fieldsync synkronus …`: look at Synkronus clients from the command line."""
from __future__ import annotations

import click

from web.clitools import cli_session


@click.group("synkronus")
def group():
    """Synkronus 1.0.3 clients."""


@group.command("clients")
@click.option("--tenant", default=None, help="only this tenant's clients")
def clients(tenant):
    """Each client's last complete pull (the version it has, and when)."""
    from models.synkronus.store import list_cursors
    with cli_session() as (_, session):
        for row in list_cursors(session, tenant):
            click.echo(f"{row.tenant_id}\t{row.client_id}\tversion={row.pulled_version}\t"
                       f"{row.updated_at:%Y-%m-%d %H:%M:%S}")
