"""exports: the analyst role and export schedules

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", "role IN ('read-only','read-write','admin','analyst')")
    op.create_table(
        "export_schedules",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("retention", sa.Integer(), server_default="7", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_job_id", sa.UUID(), nullable=True),
        sa.Column("last_until_version", sa.BigInteger(), nullable=True),
        sa.Column("schemas", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"),
                  nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_export_schedules_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_schedules")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_export_schedules_tenant_id_name")),
    )
    op.create_index("ix_export_schedules_due", "export_schedules", ["next_run_at"],
                    postgresql_where=sa.text("NOT paused"))


def downgrade() -> None:
    op.drop_index("ix_export_schedules_due", table_name="export_schedules")
    op.drop_table("export_schedules")
    op.execute("DELETE FROM users WHERE role = 'analyst'")
    op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_role"), "users", "role IN ('read-only','read-write','admin')")
