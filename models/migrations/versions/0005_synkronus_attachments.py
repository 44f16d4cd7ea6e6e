"""synkronus attachments, attachment operations and resumable uploads

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synkronus_attachments",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("attachment_id", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("unreferenced_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "attachment_id", name=op.f("pk_synkronus_attachments")),
    )
    op.create_index("ix_synkronus_attachments_sha256", "synkronus_attachments", ["sha256"], unique=False)
    op.create_table(
        "synkronus_attachment_operations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("attachment_id", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(length=256), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("operation IN ('create','update','delete')",
                           name=op.f("ck_synkronus_attachment_operations_operation")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synkronus_attachment_operations")),
    )
    op.create_index("ix_synkronus_attachment_operations_tenant_version", "synkronus_attachment_operations",
                    ["tenant_id", "version"], unique=False)
    op.create_table(
        "synkronus_uploads",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("attachment_id", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("declared_size", sa.BigInteger(), nullable=True),
        sa.Column("received", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="OPEN", nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_synkronus_uploads")),
    )
    op.create_index("ix_synkronus_uploads_tenant", "synkronus_uploads", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_synkronus_uploads_tenant", table_name="synkronus_uploads")
    op.drop_table("synkronus_uploads")
    op.drop_index("ix_synkronus_attachment_operations_tenant_version",
                  table_name="synkronus_attachment_operations")
    op.drop_table("synkronus_attachment_operations")
    op.drop_index("ix_synkronus_attachments_sha256", table_name="synkronus_attachments")
    op.drop_table("synkronus_attachments")
