"""Foundation tables: tenants, users, jobs, per-record job errors, receipts, blobs, token revocations."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text,
    UniqueConstraint, func, text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

# analyst: reads exports and nothing else (web.auth lets it through only where a view names it)
ROLES = ("read-only", "read-write", "admin", "analyst")
JOB_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
TERMINAL_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")


def _now_col(**kw):
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False, **kw)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), nullable=False, server_default="")
    created_at: Mapped[dt.datetime] = _now_col()


class User(Base):
    __tablename__ = "users"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    username: Mapped[str] = mapped_column(String(128), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    is_system: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # In every token as the `ver` claim; a password change bumps it, which revokes every token issued before.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[dt.datetime] = _now_col()
    updated_at: Mapped[dt.datetime] = _now_col()
    __table_args__ = (
        # Usernames are global: login carries no tenant, so a name must identify one user.
        UniqueConstraint("username"),
        CheckConstraint("role IN ('read-only','read-write','admin','analyst')", name="role"),
    )


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    queue: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="QUEUED")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="5")
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    progress_done: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    # Resume point for a redelivered job: the number of input records already committed.
    checkpoint: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    counts: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    params: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    result: Mapped[dict | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(512))
    payload_hash: Mapped[str | None] = mapped_column(String(64))
    blob_sha256: Mapped[str | None] = mapped_column(String(64))
    # A small payload kept in the row itself (durable with the job's commit, no file to write); dropped
    # when the job completes. UTF-8 text (any JSON push) in payload_text, which travels as it is; other
    # bytes in payload (hex on the wire). Both stored uncompressed (STORAGE EXTERNAL: 0010, 0011).
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    payload_text: Mapped[str | None] = mapped_column(Text, deferred=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = _now_col()
    updated_at: Mapped[dt.datetime] = _now_col()
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "idempotency_key"),
        CheckConstraint("status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED')", name="status"),
        Index("ix_jobs_status_open", "status", "enqueued_at",
              postgresql_where=text("status IN ('QUEUED','RUNNING')")),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index("ix_jobs_parent", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
    )


class JobRecordError(Base):
    __tablename__ = "job_record_errors"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    record_id: Mapped[str | None] = mapped_column(Text)
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str | None] = mapped_column(Text)
    record: Mapped[str | None] = mapped_column(Text)  # the offending input as text, capped
    # 'error': the record was refused; 'warning': stored, but worth telling the client (e.g. CONFLICT)
    severity: Mapped[str] = mapped_column(String(8), nullable=False, server_default="error")
    __table_args__ = (
        # A redelivered chunk re-reports the same errors; the key makes that a no-op.
        UniqueConstraint("job_id", "position", "code"),
    )


class Receipt(Base):
    __tablename__ = "receipts"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    transmission_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = _now_col()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Blob(Base):
    __tablename__ = "blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    media_type: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _now_col()


class RefreshFamily(Base):
    """Refresh-token rotation lives in PostgreSQL so a Redis loss revives no revoked token."""
    __tablename__ = "refresh_families"
    family: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    current_jti: Mapped[str] = mapped_column(String(64), nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # a password change revokes all of a user's families
    __table_args__ = (Index("ix_refresh_families_user", "user_id"),)


class ExportSchedule(Base):
    """A recurring export: `spec` (as POST /exports takes it) run on `cron` (UTC) into `target`, a
    directory below EXPORT_TARGET_ROOT (stored relative to it). `last_until_version` is where the last
    completed run ended: the next run starts there. `schemas` keeps each file's column types from the
    last run, so a type that changes is widened to utf8 and reported."""
    __tablename__ = "export_schedules"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    cron: Mapped[str] = mapped_column(String(128), nullable=False)
    spec: Mapped[dict] = mapped_column(JSONB, nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    retention: Mapped[int] = mapped_column(Integer, nullable=False, server_default="7")
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    next_run_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    last_until_version: Mapped[int | None] = mapped_column(BigInteger)
    schemas: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = _now_col()
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_export_schedules_due", "next_run_at", postgresql_where=text("NOT paused")),
    )
