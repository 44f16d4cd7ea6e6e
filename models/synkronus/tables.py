"""Synkronus's own tables: none yet. Observations live in the engine's `records` (namespace
"synkronus") and pull cursors in the engine's `client_cursors`."""


# --- Attachments: immutable files named by the client's id, and the operations clients download by ---
import datetime as _dt  # noqa: E402

from sqlalchemy import BigInteger as _BigInteger, CheckConstraint as _Check, DateTime as _DateTime  # noqa: E402
from sqlalchemy import Index as _Index, String as _String, Text as _Text, func as _func  # noqa: E402
from sqlalchemy.orm import Mapped as _Mapped, mapped_column as _column  # noqa: E402

from models.base import Base as _Base  # noqa: E402


class SynkronusAttachment(_Base):
    """An attachment of one tenant: its id (a single path segment) names a content-addressed blob."""
    __tablename__ = "synkronus_attachments"
    tenant_id: _Mapped[str] = _column(_String(128), primary_key=True)
    attachment_id: _Mapped[str] = _column(_String(255), primary_key=True)
    sha256: _Mapped[str] = _column(_String(64), nullable=False)
    size: _Mapped[int] = _column(_BigInteger, nullable=False)
    content_type: _Mapped[str] = _column(_String(255), nullable=False)
    created_by: _Mapped[str | None] = _column(_String(128))
    version: _Mapped[int] = _column(_BigInteger, nullable=False)
    created_at: _Mapped[_dt.datetime] = _column(_DateTime(timezone=True), server_default=_func.now(),
                                                nullable=False)
    # when a sweep first found no record naming it (NULL: referenced, or not swept since it was created)
    unreferenced_since: _Mapped[_dt.datetime | None] = _column(_DateTime(timezone=True))
    __table_args__ = (_Index("ix_synkronus_attachments_sha256", "sha256"),)


class SynkronusAttachmentOperation(_Base):
    """One change clients replay from the manifest: `create` (download) or `delete`, at a tenant version.
    `client_id` NULL means every client."""
    __tablename__ = "synkronus_attachment_operations"
    id: _Mapped[int] = _column(_BigInteger, primary_key=True, autoincrement=True)
    tenant_id: _Mapped[str] = _column(_String(128), nullable=False)
    attachment_id: _Mapped[str] = _column(_String(255), nullable=False)
    operation: _Mapped[str] = _column(_String(16), nullable=False)
    version: _Mapped[int] = _column(_BigInteger, nullable=False)
    client_id: _Mapped[str | None] = _column(_String(256))
    sha256: _Mapped[str | None] = _column(_String(64))
    size: _Mapped[int | None] = _column(_BigInteger)
    content_type: _Mapped[str | None] = _column(_String(255))
    actor: _Mapped[str | None] = _column(_Text)
    created_at: _Mapped[_dt.datetime] = _column(_DateTime(timezone=True), server_default=_func.now(),
                                                nullable=False)
    __table_args__ = (
        _Check("operation IN ('create','update','delete')", name="operation"),
        _Index("ix_synkronus_attachment_operations_tenant_version", "tenant_id", "version"),
    )


# --- App bundles: each pushed ZIP (a content-addressed blob) as a numbered version, and its file index ---
from sqlalchemy import Boolean as _Boolean, ForeignKey as _ForeignKey, Integer as _Integer  # noqa: E402
from sqlalchemy import UniqueConstraint as _Unique, text as _sql  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB as _JSONB  # noqa: E402


class SynkronusBundleVersion(_Base):
    """One pushed app bundle of a tenant: version `number` (shown as NNNN), its ZIP blob and APP_INFO.json.
    At most one version of a tenant is active."""
    __tablename__ = "synkronus_bundle_versions"
    id: _Mapped[int] = _column(_BigInteger, primary_key=True, autoincrement=True)
    tenant_id: _Mapped[str] = _column(_String(128), nullable=False)
    number: _Mapped[int] = _column(_Integer, nullable=False)
    sha256: _Mapped[str] = _column(_String(64), nullable=False)
    size: _Mapped[int] = _column(_BigInteger, nullable=False)
    app_info: _Mapped[dict] = _column(_JSONB, nullable=False)
    active: _Mapped[bool] = _column(_Boolean, nullable=False, server_default=_sql("false"))
    activated_at: _Mapped[_dt.datetime | None] = _column(_DateTime(timezone=True))
    created_by: _Mapped[str | None] = _column(_String(128))
    created_at: _Mapped[_dt.datetime] = _column(_DateTime(timezone=True), server_default=_func.now(),
                                                nullable=False)
    __table_args__ = (
        _Unique("tenant_id", "number"),
        _Index("ix_synkronus_bundle_versions_active", "tenant_id", unique=True,
               postgresql_where=_sql("active")),
    )


class SynkronusBundleFile(_Base):
    """A file of a bundle version: a member of its ZIP, served from the archive (never extracted)."""
    __tablename__ = "synkronus_bundle_files"
    bundle_id: _Mapped[int] = _column(_ForeignKey("synkronus_bundle_versions.id", ondelete="CASCADE"),
                                      primary_key=True)
    path: _Mapped[str] = _column(_Text, primary_key=True)
    sha256: _Mapped[str] = _column(_String(64), nullable=False)
    size: _Mapped[int] = _column(_BigInteger, nullable=False)
    mime_type: _Mapped[str] = _column(_String(255), nullable=False)


# --- Attachment uploads in progress (resumable: `received` is the confirmed, fsynced offset) ---
import uuid as _uuid  # noqa: E402

from sqlalchemy.dialects.postgresql import UUID as _UUID  # noqa: E402


class SynkronusUpload(_Base):
    """A resumable upload of one attachment id; finishing it creates the attachment."""
    __tablename__ = "synkronus_uploads"
    id: _Mapped[_uuid.UUID] = _column(_UUID(as_uuid=True), primary_key=True, default=_uuid.uuid4)
    tenant_id: _Mapped[str] = _column(_String(128), nullable=False)
    attachment_id: _Mapped[str] = _column(_String(255), nullable=False)
    content_type: _Mapped[str | None] = _column(_String(255))
    declared_size: _Mapped[int | None] = _column(_BigInteger)
    received: _Mapped[int] = _column(_BigInteger, nullable=False, server_default="0")
    status: _Mapped[str] = _column(_String(16), nullable=False, server_default="OPEN")
    created_by: _Mapped[str | None] = _column(_String(128))
    created_at: _Mapped[_dt.datetime] = _column(_DateTime(timezone=True), server_default=_func.now(),
                                                nullable=False)
    updated_at: _Mapped[_dt.datetime] = _column(_DateTime(timezone=True), server_default=_func.now(),
                                                nullable=False)
    __table_args__ = (_Index("ix_synkronus_uploads_tenant", "tenant_id", "created_at"),)
