"""index step: one watermark per (tenant, namespace) instead of a mark per indexed job

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "read_index_watermarks",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("namespace", sa.String(length=32), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "namespace", name=op.f("pk_read_index_watermarks")),
    )
    # The read models were built job by job; start them again from the audit (the next index job of each
    # namespace folds every change from version 0, by the same deltas).
    op.execute("DELETE FROM read_type_counts")
    op.execute("DELETE FROM read_search_documents")
    op.drop_table("read_index_marks")
    op.create_index("ix_jobs_parent", "jobs", ["parent_id"], postgresql_where=sa.text("parent_id IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_jobs_parent", table_name="jobs")
    op.create_table(
        "read_index_marks",
        sa.Column("source_job", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source_job", name=op.f("pk_read_index_marks")),
    )
    op.drop_table("read_index_watermarks")
