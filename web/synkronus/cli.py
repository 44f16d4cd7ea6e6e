"""`fieldsync synkronus …`: Synkronus clients and app bundles from the command line."""
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


@group.group("bundle")
def bundle():
    """App bundles of a tenant (what GET /app-bundle/* serves)."""


@bundle.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--tenant", default="default", show_default=True)
@click.option("--activate", is_flag=True, help="switch to the new version once stored")
def bundle_push(file, tenant, activate):
    """Check a bundle ZIP and store it as the tenant's next version (not active unless --activate)."""
    from models.blobs import BlobStore
    from models.synkronus import bundles as store
    from workers.synkronus.bundles import BlobTooLarge, BundleRejected, store_bundle
    with cli_session() as (settings, session), open(file, "rb") as upload:
        try:
            stored = store_bundle(session, BlobStore(settings.blob_dir), settings, tenant_id=tenant,
                                  upload=upload, actor="cli")
        except BundleRejected as exc:
            raise click.ClickException("the app bundle is invalid:\n  " + "\n  ".join(exc.problems)) from None
        except BlobTooLarge as exc:
            raise click.ClickException(f"an app bundle may be at most {exc.limit} bytes") from None
        name = store.version_name(stored.row.number)
        if activate:
            store.lock_tenant(session, tenant)
            store.activate(session, tenant, stored.row.number)
    click.echo(f"stored version {name}" + (" (active)" if activate else ""))


@bundle.command("list")
@click.option("--tenant", default="default", show_default=True)
def bundle_list(tenant):
    """The tenant's versions, newest first; the active one marked with *."""
    from models.synkronus import bundles as store
    with cli_session() as (_, session):
        for row in store.list_versions(session, tenant):
            click.echo(f"{store.version_name(row.number)}{' *' if row.active else ''}\t{row.size}\t"
                       f"{row.created_at:%Y-%m-%d %H:%M:%S}\t{row.created_by or ''}")


@bundle.command("switch")
@click.argument("version")
@click.option("--tenant", default="default", show_default=True)
def bundle_switch(version, tenant):
    """Make VERSION the tenant's active bundle."""
    from models.synkronus import bundles as store
    number = store.parse_version(version)
    with cli_session() as (_, session):
        row = None
        if number is not None:
            store.lock_tenant(session, tenant)
            row = store.activate(session, tenant, number)
        if row is None:
            raise click.ClickException(f"app bundle version {version!r} does not exist")
    click.echo(f"Switched to app bundle version {store.version_name(number)}")
