"""msupply sites and queues

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "msupply_sites",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("hardware_id", sa.Text(), nullable=True),
        sa.Column("store_id", sa.Text(), server_default="", nullable=False),
        sa.Column("name_id", sa.Text(), server_default="", nullable=False),
        sa.Column("supplying_store_id", sa.Text(), server_default="", nullable=False),
        sa.Column("supplying_store_name_id", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_msupply_sites_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "site_id", name=op.f("pk_msupply_sites")),
        sa.UniqueConstraint("name", name=op.f("uq_msupply_sites_name")),
    )
    op.execute("CREATE SEQUENCE msupply_queue_id_seq")
    op.create_table(
        "msupply_queue",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.BigInteger(), server_default=sa.text("nextval('msupply_queue_id_seq')"), nullable=False),
        sa.Column("sync_id", sa.Text(), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=False),
        sa.Column("record_type", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("sync_type", sa.String(length=1), nullable=False),
        sa.Column("store_id", sa.Text(), server_default="", nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("merge_keep", sa.Text(), server_default="", nullable=False),
        sa.Column("merge_delete", sa.Text(), server_default="", nullable=False),
        # the primary key is also the queue order (oldest first per site)
        sa.PrimaryKeyConstraint("tenant_id", "site_id", "id", name=op.f("pk_msupply_queue")),
        # one entry per record per site: a newer change replaces the queued one
        sa.UniqueConstraint("tenant_id", "site_id", "record_key", name=op.f("uq_msupply_queue_record")),
    )
    op.create_index("ix_msupply_queue_sync_id", "msupply_queue", ["tenant_id", "site_id", "sync_id"])
    # A queue churns: every acknowledged entry is a dead row at the head that each pull steps over until
    # vacuum removes it, so vacuum it after a fixed number of deletions rather than a share of the table.
    op.execute("ALTER TABLE msupply_queue SET (autovacuum_vacuum_scale_factor = 0, "
               "autovacuum_vacuum_threshold = 20000, autovacuum_analyze_scale_factor = 0.02)")
    op.create_table(
        "msupply_sync_ids",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("sync_id", sa.Text(), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "site_id", "sync_id", name=op.f("pk_msupply_sync_ids")),
    )


def downgrade() -> None:
    op.drop_table("msupply_sync_ids")
    op.drop_index("ix_msupply_queue_sync_id", table_name="msupply_queue")
    op.drop_table("msupply_queue")
    op.execute("DROP SEQUENCE IF EXISTS msupply_queue_id_seq")
    op.drop_table("msupply_sites")
