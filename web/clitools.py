"""What every `fieldsync` command needs, core or dialect: the settings (with the URLs of a running
embedded `fieldsync serve` when none are set) and a session scope on the database."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from config import load_settings
from models.db import make_engine, make_session_factory, session_scope


def cli_settings(data_dir: str | None = None, need_urls: bool = True):
    """Settings from the environment; without DATABASE_URL/REDIS_URL, the URLs of a running embedded
    `fieldsync serve` on the same data directory are used."""
    settings = load_settings()
    if data_dir:
        settings = settings.replace(data_dir=Path(data_dir))
    if need_urls and (settings.database_url is None or settings.redis_url is None):
        from web.embedded import read_runtime_file
        info = read_runtime_file(settings.data_dir) or {}
        settings = settings.replace(database_url=settings.database_url or info.get("database_url"),
                                    redis_url=settings.redis_url or info.get("redis_url"))
        if settings.database_url is None:
            raise click.ClickException("set DATABASE_URL, or start `fieldsync serve` on this data directory first")
    return settings


def cli_sessions(settings):
    return make_session_factory(make_engine(settings.database_url, pool_size=1))


@contextmanager
def cli_session(settings=None):
    """(settings, session) for one unit of work of a command; commits when the block ends normally."""
    settings = settings or cli_settings()
    with session_scope(cli_sessions(settings)) as session:
        yield settings, session
