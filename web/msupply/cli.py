"""`fieldsync site …`: register and look after mSupply satellites from the command line."""
from __future__ import annotations

import click

from models.msupply import SERVER_SITE_ID
from models.msupply import store as msupply
from web.clitools import cli_session


def _find(session, tenant: str, site_id: int):
    site = msupply.get_site(session, tenant, site_id)
    if site is None:
        raise click.ClickException(f"no site {site_id} in tenant {tenant}")
    return site


@click.group("site")
def group():
    """Manage mSupply satellite sites."""


@group.command("create")
@click.option("--id", "site_id", type=int, required=True, help="the site's integer id (the primary is 1)")
@click.option("--name", required=True, help="the site name the satellite logs in with")
@click.option("--tenant", default="default", show_default=True)
@click.option("--store-id", default="")
@click.option("--name-id", default="")
@click.option("--supplying-store-id", default="")
@click.option("--supplying-store-name-id", default="")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def site_create(site_id, name, tenant, store_id, name_id, supplying_store_id, supplying_store_name_id, password):
    if site_id <= SERVER_SITE_ID:
        raise click.ClickException(f"site ids start at {SERVER_SITE_ID + 1}; "
                                   f"{SERVER_SITE_ID} is the primary")
    try:
        with cli_session() as (settings, session):
            if msupply.site_by_name(session, name) is not None:
                raise msupply.SiteExists(name)
            msupply.create_site(session, tenant_id=tenant, site_id=site_id, name=name, password=password,
                                rounds=settings.bcrypt_rounds, store_id=store_id, name_id=name_id,
                                supplying_store_id=supplying_store_id,
                                supplying_store_name_id=supplying_store_name_id)
    except msupply.SiteExists:
        raise click.ClickException("a site with that id or name already exists") from None
    click.echo(f"created site {site_id} ({name}) in tenant {tenant}")


@group.command("list")
@click.option("--tenant", default=None)
def site_list(tenant):
    with cli_session() as (_, session):
        for s in msupply.list_sites(session, tenant):
            bound = s.hardware_id or "-"
            click.echo(f"{s.tenant_id}\t{s.site_id}\t{s.name}\tstore={s.store_id or '-'}\thardware={bound}")


@group.command("reset-hardware")
@click.argument("site_id", type=int)
@click.option("--tenant", default="default", show_default=True)
def site_reset_hardware(site_id, tenant):
    with cli_session() as (_, session):
        msupply.reset_hardware(session, _find(session, tenant, site_id))
    click.echo(f"hardware binding cleared for site {site_id}")


@group.command("set-password")
@click.argument("site_id", type=int)
@click.option("--tenant", default="default", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def site_set_password(site_id, tenant, password):
    with cli_session() as (settings, session):
        msupply.update_site(session, _find(session, tenant, site_id), password=password,
                            rounds=settings.bcrypt_rounds)
    click.echo(f"password changed for site {site_id}")
