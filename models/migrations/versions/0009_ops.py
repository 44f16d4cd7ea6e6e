"""ops console: devices, and the jobs indexes its lists use

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("dialect", sa.String(length=32), nullable=False),
        sa.Column("client_id", sa.String(length=256), nullable=False),
        sa.Column("app_version", sa.String(length=128), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_push_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_pull_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=256), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("pulls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("records_pushed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_pulled_version", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "dialect", "client_id", name=op.f("pk_devices")),
    )
    # room on each page for the per-request update to stay HOT (no index names a column it changes)
    op.execute("ALTER TABLE devices SET (fillfactor = 70)")
    op.create_index("ix_jobs_created", "jobs", ["created_at"])
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_kind_created", "jobs", ["kind", "created_at"])
    op.create_index("ix_jobs_failed_finished", "jobs", ["finished_at"], postgresql_where=sa.text("status = 'FAILED'"))


def downgrade() -> None:
    for name in ("ix_jobs_failed_finished", "ix_jobs_kind_created", "ix_jobs_status_created", "ix_jobs_created"):
        op.drop_index(name, table_name="jobs")
    op.drop_table("devices")
