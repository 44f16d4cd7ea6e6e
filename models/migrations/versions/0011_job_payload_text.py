"""jobs: an inline payload that is UTF-8 text (every JSON push) kept in a text column

A bytea value travels as hex in both directions: twice its size on the wire, encoded by the server and
decoded by the driver. The worker that claims a job reads its payload once; kept as text, the same bytes
come back as they went in. A payload that is not UTF-8 (or holds a NUL) stays in `payload`. Stored
uncompressed, as `payload` is (0010).

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("payload_text", sa.Text(), nullable=True))
    op.execute("ALTER TABLE jobs ALTER COLUMN payload_text SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("UPDATE jobs SET payload = convert_to(payload_text, 'UTF8') WHERE payload_text IS NOT NULL")
    op.drop_column("jobs", "payload_text")
