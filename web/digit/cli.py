"""`fieldsync forms publish FILE`: publish campaign form versions from a JSON file (one form in the
seed's shape, or a list of them), with the same checks as POST /admin/forms."""
from __future__ import annotations

import json

import click


@click.group()
def forms():
    """Manage DIGIT campaign forms."""


@forms.command("publish")
@click.argument("file", type=click.File("rb"))
def publish_cmd(file):
    """Publish the form(s) in FILE; a version not above the latest is refused."""
    from models.db import session_scope
    from web.cli import _sessions, _settings
    from web.digit.admin_forms import publish
    from web.errors import ApiError
    try:
        body = json.loads(file.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file.name} is not valid JSON: {exc}") from None
    documents = body if isinstance(body, list) else [body]
    sessions = _sessions(_settings())
    for document in documents:
        try:
            with session_scope(sessions) as session:
                row = publish(session, document, created_by="cli")
                label = f"{row.tenant_id}/{row.campaign_id}/{row.schema} v{row.version}"
        except ApiError as err:
            raise click.ClickException(err.message) from None
        click.echo(f"published {label}")
