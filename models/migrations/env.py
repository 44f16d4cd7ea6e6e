"""Alembic environment: the connection is handed in by models.migrate (never read from env here)."""
from alembic import context

from models.base import Base
import models.tables  # noqa: F401  (register tables)
import models.records  # noqa: F401
import models.digit  # noqa: F401
import models.msupply  # noqa: F401

config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
