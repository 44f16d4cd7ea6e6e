"""foundation and engine tables

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


RFC3339_FUNCTION = """
CREATE OR REPLACE FUNCTION fs_rfc3339(ts timestamptz) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN date_part('microseconds', ts)::bigint % 1000000 = 0 THEN ''
                ELSE to_char(ts AT TIME ZONE 'UTC', '.US') END
        || 'Z'
$$
"""


def upgrade() -> None:
    # RFC 3339 text in UTC, the way feeds render timestamps (built in SQL so pulls splice text)
    op.execute(RFC3339_FUNCTION)
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('media_type', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('client_cursors',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('client_id', sa.Text(), nullable=False),
    sa.Column('pulled_version', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'namespace', 'client_id', name=op.f('pk_client_cursors'))
    )
    op.create_table('read_search_documents',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.Text(), nullable=False),
    sa.Column('record_type', sa.Text(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'namespace', 'record_key', name=op.f('pk_read_search_documents'))
    )
    op.create_index('ix_read_search_documents_tsv', 'read_search_documents', [sa.literal_column("to_tsvector('simple', body)")], unique=False, postgresql_using='gin')
    op.create_table('read_type_counts',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('record_type', sa.Text(), nullable=False),
    sa.Column('live', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('deleted', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('as_of_version', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'namespace', 'record_type', name=op.f('pk_read_type_counts'))
    )
    op.create_table('read_index_marks',
    sa.Column('source_job', sa.UUID(), nullable=False),
    sa.Column('indexed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source_job', name=op.f('pk_read_index_marks'))
    )
    op.create_table('receipts',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('client_id', sa.String(length=256), nullable=False),
    sa.Column('transmission_id', sa.String(length=512), nullable=False),
    sa.Column('payload_hash', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.UUID(), nullable=True),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'client_id', 'transmission_id', name=op.f('pk_receipts'))
    )
    op.create_table('record_changes',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.Text(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('old_hash', sa.String(length=64), nullable=True),
    sa.Column('new_hash', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.Text(), nullable=True),
    sa.Column('transmission', sa.Text(), nullable=True),
    sa.Column('job_id', sa.UUID(), nullable=True),
    sa.Column('record_type', sa.Text(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('old_record_type', sa.Text(), nullable=True),
    sa.Column('old_deleted', sa.Boolean(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_changes'))
    )
    op.create_index('ix_record_changes_key', 'record_changes', ['tenant_id', 'namespace', 'record_key'], unique=False)
    op.create_index('ix_record_changes_job', 'record_changes', ['job_id'], unique=False)
    op.create_index('uq_record_changes_version', 'record_changes', ['tenant_id', 'version'], unique=True)
    op.create_table('record_conflicts',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.Text(), nullable=False),
    sa.Column('server_version', sa.BigInteger(), nullable=False),
    sa.Column('client_since', sa.BigInteger(), nullable=True),
    sa.Column('losing_hash', sa.String(length=64), nullable=True),
    sa.Column('losing_data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('winner_origin', sa.Text(), nullable=True),
    sa.Column('job_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_conflicts'))
    )
    op.create_table('records',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.Text(), nullable=False),
    sa.Column('record_type', sa.Text(), server_default='', nullable=False),
    sa.Column('schema_version', sa.Text(), server_default='', nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('meta', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('deleted', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('geolocation', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('origin', sa.Text(), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.Column('updated_by', sa.Text(), nullable=True),
    sa.Column('feed_key', sa.Text(), sa.Computed("tenant_id::text || ':' || namespace::text", persisted=True),
              nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'namespace', 'record_key', name=op.f('pk_records'))
    )
    op.create_index('ix_records_feed', 'records', ['feed_key', 'version'], unique=False)
    op.create_index('ix_records_type_feed', 'records', ['feed_key', 'record_type', 'version'], unique=False)
    op.create_table('refresh_families',
    sa.Column('family', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('current_jti', sa.String(length=64), nullable=False),
    sa.Column('revoked', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('family', name=op.f('pk_refresh_families'))
    )
    op.create_table('sync_counters',
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('value', sa.BigInteger(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_sync_counters'))
    )
    op.create_table('tenants',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=256), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('queue', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='QUEUED', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='5', nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress_done', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('progress_total', sa.BigInteger(), nullable=True),
    sa.Column('checkpoint', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_detail', sa.Text(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=512), nullable=True),
    sa.Column('payload_hash', sa.String(length=64), nullable=True),
    sa.Column('blob_sha256', sa.String(length=64), nullable=True),
    sa.Column('parent_id', sa.UUID(), nullable=True),
    sa.Column('created_by', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')", name=op.f('ck_jobs_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_jobs_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('tenant_id', 'kind', 'idempotency_key', name=op.f('uq_jobs_tenant_id_kind_idempotency_key'))
    )
    op.create_index('ix_jobs_status_open', 'jobs', ['status', 'enqueued_at'], unique=False, postgresql_where=sa.text("status IN ('QUEUED','RUNNING')"))
    op.create_index('ix_jobs_tenant_created', 'jobs', ['tenant_id', 'created_at'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('tenant_id', sa.String(length=128), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('is_system', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role IN ('read-only','read-write','admin')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_users_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('job_record_errors',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('record_id', sa.Text(), nullable=True),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=True),
    sa.Column('record', sa.Text(), nullable=True),
    sa.Column('severity', sa.String(length=8), server_default='error', nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_record_errors_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_record_errors')),
    sa.UniqueConstraint('job_id', 'position', 'code', name=op.f('uq_job_record_errors_job_id_position_code'))
    )
    # ### end Alembic commands ###


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS fs_rfc3339(timestamptz)")
    op.drop_table('job_record_errors')
    op.drop_table('users')
    op.drop_index('ix_jobs_tenant_created', table_name='jobs')
    op.drop_index('ix_jobs_status_open', table_name='jobs', postgresql_where=sa.text("status IN ('QUEUED','RUNNING')"))
    op.drop_table('jobs')
    op.drop_table('tenants')
    op.drop_table('sync_counters')
    op.drop_table('refresh_families')
    op.drop_index('ix_records_type_feed', table_name='records')
    op.drop_index('ix_records_feed', table_name='records')
    op.drop_table('records')
    op.drop_table('record_conflicts')
    op.drop_index('uq_record_changes_version', table_name='record_changes')
    op.drop_index('ix_record_changes_job', table_name='record_changes')
    op.drop_index('ix_record_changes_key', table_name='record_changes')
    op.drop_table('record_changes')
    op.drop_table('receipts')
    op.drop_table('read_index_marks')
    op.drop_table('read_type_counts')
    op.drop_index('ix_read_search_documents_tsv', table_name='read_search_documents', postgresql_using='gin')
    op.drop_table('read_search_documents')
    op.drop_table('client_cursors')
    op.drop_table('blobs')
    # ### end Alembic commands ###
