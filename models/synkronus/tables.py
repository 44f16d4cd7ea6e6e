"""Synkronus's own tables: attachments and their operations, resumable attachment uploads, and app bundle
versions with their file index. Observations live in the engine's `records` (namespace "synkronus") and
pull cursors in the engine's `client_cursors`."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


# --- Attachments: immutable files named by the client's id, and the operations clients download by ---


class SynkronusAttachment(Base):
    """An attachment of one tenant: its id (a single path segment) names a content-addressed blob."""
    __tablename__ = "synkronus_attachments"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    attachment_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                nullable=False)
    # when a sweep first found no record naming it (NULL: referenced, or not swept since it was created)
    unreferenced_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_synkronus_attachments_sha256", "sha256"),)


class SynkronusAttachmentOperation(Base):
    """One change clients replay from the manifest: `create` (download) or `delete`, at a tenant version.
    `client_id` NULL means every client."""
    __tablename__ = "synkronus_attachment_operations"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    attachment_id: Mapped[str] = mapped_column(String(255), nullable=False)
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(256))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                nullable=False)
    __table_args__ = (
        CheckConstraint("operation IN ('create','update','delete')", name="operation"),
        Index("ix_synkronus_attachment_operations_tenant_version", "tenant_id", "version"),
    )


# --- App bundles: each pushed ZIP (a content-addressed blob) as a numbered version, and its file index ---


class SynkronusBundleVersion(Base):
    """One pushed app bundle of a tenant: version `number` (shown as NNNN), its ZIP blob and APP_INFO.json.
    At most one version of a tenant is active."""
    __tablename__ = "synkronus_bundle_versions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    app_info: Mapped[dict] = mapped_column(JSONB, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                nullable=False)
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_synkronus_bundle_versions_active", "tenant_id", unique=True,
               postgresql_where=text("active")),
    )


class SynkronusBundleFile(Base):
    """A file of a bundle version: a member of its ZIP, served from the archive (never extracted)."""
    __tablename__ = "synkronus_bundle_files"
    bundle_id: Mapped[int] = mapped_column(ForeignKey("synkronus_bundle_versions.id", ondelete="CASCADE"),
                                      primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mime_type: Mapped[str] = mapped_column(String(255), nullable=False)


# --- Attachment uploads in progress (resumable: `received` is the confirmed, fsynced offset) ---


class SynkronusUpload(Base):
    """A resumable upload of one attachment id; finishing it creates the attachment."""
    __tablename__ = "synkronus_uploads"
    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    attachment_id: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str | None] = mapped_column(String(255))
    declared_size: Mapped[int | None] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="OPEN")
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                nullable=False)
    __table_args__ = (Index("ix_synkronus_uploads_tenant", "tenant_id", "created_at"),)
