"""Alembic migrations, run by `fieldsync migrate` (models.migrate.upgrade)."""
