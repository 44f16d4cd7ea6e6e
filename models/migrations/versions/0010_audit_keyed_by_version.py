"""engine: the audit of changes keyed by (tenant, version), its unused indexes gone; job payloads kept
uncompressed

Every accepted change writes one record_changes row inside the counter lock, so each index on it is paid
for by every push. Only the index step reads the table, by (tenant_id, version): that key becomes the
primary key, and the surrogate id, its sequence and the by-key and by-job indexes (which nothing reads)
are dropped.

A job's inline payload (up to 4 MiB of JSON) is written once by the request that accepts it, read once by
the worker that claims it and cleared when the job ends; compressing it (pglz) cost the accepting request
more time than writing every byte does, so it is stored as it is.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_record_changes_key", table_name="record_changes")
    op.drop_index("ix_record_changes_job", table_name="record_changes")
    op.drop_constraint(op.f("pk_record_changes"), "record_changes", type_="primary")
    op.drop_column("record_changes", "id")
    op.drop_index("uq_record_changes_version", table_name="record_changes")
    op.create_primary_key(op.f("pk_record_changes"), "record_changes", ["tenant_id", "version"])
    op.execute("ALTER TABLE jobs ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs ALTER COLUMN payload SET STORAGE EXTENDED")
    op.drop_constraint(op.f("pk_record_changes"), "record_changes", type_="primary")
    op.create_index("uq_record_changes_version", "record_changes", ["tenant_id", "version"], unique=True)
    op.add_column("record_changes", sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_primary_key(op.f("pk_record_changes"), "record_changes", ["id"])
    op.create_index("ix_record_changes_job", "record_changes", ["job_id"], unique=False)
    op.create_index("ix_record_changes_key", "record_changes", ["tenant_id", "namespace", "record_key"],
                    unique=False)
