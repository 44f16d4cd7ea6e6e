"""The migrations build exactly the schema the models describe (so a model change without its migration,
or the reverse, fails here)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models.base import Base
from models.dialects import load_tables


def test_migrated_schema_matches_the_models(engine):
    load_tables()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
