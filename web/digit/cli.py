"""`fieldsync forms publish FILE`: publish campaign form versions from a JSON file (one form in the
seed's shape, or a list of them), with the same checks as POST /admin/forms."""
from __future__ import annotations

import json

import click

from models.digit.store import VersionNotNewer
from web.clitools import cli_session
from workers.digit.forms import FormRejected, publish


@click.group("forms")
def group():
    """Manage DIGIT campaign forms."""


@group.command("publish")
@click.argument("file", type=click.File("rb"))
def publish_cmd(file):
    """Publish the form(s) in FILE; a version not above the latest is refused."""
    try:
        body = json.loads(file.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file.name} is not valid JSON: {exc}") from None
    documents = body if isinstance(body, list) else [body]
    for document in documents:
        try:
            with cli_session() as (_, session):
                row = publish(session, document, created_by="cli")
                label = f"{row.tenant_id}/{row.campaign_id}/{row.schema} v{row.version}"
        except FormRejected as exc:
            raise click.ClickException(str(exc)) from None
        except VersionNotNewer as exc:
            raise click.ClickException(f"{document.get('schema')} v{document.get('version')} is not newer than "
                                       f"the published version {exc.latest}") from None
        click.echo(f"published {label}")
