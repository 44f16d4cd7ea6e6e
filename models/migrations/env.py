"""Alembic environment: the connection is handed in by models.migrate (never read from env here)."""
from alembic import context

from models.base import Base
from models.dialects import load_tables

load_tables()
config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
