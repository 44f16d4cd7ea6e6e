"""synkronus app bundles: versions and their file index

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synkronus_bundle_versions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("app_info", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synkronus_bundle_versions")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_synkronus_bundle_versions_tenant_id_number")),
    )
    op.create_index("ix_synkronus_bundle_versions_active", "synkronus_bundle_versions", ["tenant_id"],
                    unique=True, postgresql_where=sa.text("active"))
    op.create_table(
        "synkronus_bundle_files",
        sa.Column("bundle_id", sa.BigInteger(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(["bundle_id"], ["synkronus_bundle_versions.id"], ondelete="CASCADE",
                                name=op.f("fk_synkronus_bundle_files_bundle_id_synkronus_bundle_versions")),
        sa.PrimaryKeyConstraint("bundle_id", "path", name=op.f("pk_synkronus_bundle_files")),
    )


def downgrade() -> None:
    op.drop_table("synkronus_bundle_files")
    op.drop_index("ix_synkronus_bundle_versions_active", table_name="synkronus_bundle_versions")
    op.drop_table("synkronus_bundle_versions")
