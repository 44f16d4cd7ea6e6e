"""The sync engine's tables: records (one row per record, versioned), audit of changes, conflicts,
per-tenant version counters, per-client pull cursors, and the index step's read models."""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, Computed, DateTime, Index, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class Record(Base):
    """A record as the engine sees it. `namespace` separates dialects (synkronus, msupply, digit, …);
    `record_key` is how that dialect identifies a record (observation_id, `table:RecordID`, @id…)."""
    __tablename__ = "records"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(Text, primary_key=True)
    record_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    schema_version: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    data: Mapped[dict | None] = mapped_column(JSONB)
    meta: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    content_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    geolocation: Mapped[dict | None] = mapped_column(JSONB)
    origin: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(Text)
    # Feeds are indexed on this generated key rather than on (tenant_id, namespace): then the primary key
    # is the only index that can answer a lookup by (tenant, namespace, key), so the planner never scans a
    # tenant's feed to find one record when its statistics still think the tenant is empty.
    feed_key: Mapped[str] = mapped_column(Text, Computed("tenant_id::text || ':' || namespace::text", persisted=True))
    __table_args__ = (
        Index("ix_records_feed", "feed_key", "version"),
        Index("ix_records_type_feed", "feed_key", "record_type", "version"),
    )


class RecordChange(Base):
    """Audit: one row per accepted change (the version it got, old and new hash, who and which push).
    Written inside the counter lock by every push, so it carries one index only: its key, (tenant_id,
    version), the order the index step reads it in."""
    __tablename__ = "record_changes"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    namespace: Mapped[str] = mapped_column(String(32), nullable=False)
    record_key: Mapped[str] = mapped_column(Text, nullable=False)
    old_hash: Mapped[str | None] = mapped_column(String(64))
    new_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str | None] = mapped_column(Text)
    transmission: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # type and tombstone state before and after, so read models can be updated by deltas
    record_type: Mapped[str] = mapped_column(Text, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False)
    old_record_type: Mapped[str | None] = mapped_column(Text)
    old_deleted: Mapped[bool | None] = mapped_column(Boolean)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class RecordConflict(Base):
    """The losing side of a last-writer-wins conflict, kept for ops."""
    __tablename__ = "record_conflicts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(128), nullable=False)
    namespace: Mapped[str] = mapped_column(String(32), nullable=False)
    record_key: Mapped[str] = mapped_column(Text, nullable=False)
    server_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    client_since: Mapped[int | None] = mapped_column(BigInteger)
    losing_hash: Mapped[str | None] = mapped_column(String(64))
    losing_data: Mapped[dict | None] = mapped_column(JSONB)
    winner_origin: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class SyncCounter(Base):
    """One monotonic version counter per tenant. A writer locks its row while applying a chunk and
    releases it at commit, so versions are handed out in commit order (a pull never skips)."""
    __tablename__ = "sync_counters"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="1")


class ClientCursor(Base):
    """The cutoff of each client's last complete pull: bounds the `current_version` a push answers."""
    __tablename__ = "client_cursors"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(Text, primary_key=True)
    pulled_version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class TypeCount(Base):
    """Index step read model: live and deleted records per schema type. Only the index job writes it,
    one job at a time per (tenant, namespace), so no writer on the push path ever waits on these rows."""
    __tablename__ = "read_type_counts"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_type: Mapped[str] = mapped_column(Text, primary_key=True)
    live: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    deleted: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    as_of_version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class IndexWatermark(Base):
    """How far the index step has folded a (tenant, namespace)'s changes into the read models: every
    change with a version up to `version` is counted (versions are handed out in commit order, so
    nothing below a visible version can still appear). The index job locks this row while it catches up,
    so two index jobs for the same namespace never fold the same change twice."""
    __tablename__ = "read_index_watermarks"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class SearchDocument(Base):
    """Index step read model: a full-text document per live record, kept only for the namespaces whose
    dialect searches them (`SEARCH_INDEXED = True` in models/<dialect>/__init__.py)."""
    __tablename__ = "read_search_documents"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_key: Mapped[str] = mapped_column(Text, primary_key=True)
    record_type: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    __table_args__ = (
        Index("ix_read_search_documents_tsv", text("to_tsvector('simple', body)"), postgresql_using="gin"),
    )
