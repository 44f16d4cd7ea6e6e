"""token revocation: users.token_version

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
    op.create_index("ix_refresh_families_user", "refresh_families", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_refresh_families_user", table_name="refresh_families")
    op.drop_column("users", "token_version")
