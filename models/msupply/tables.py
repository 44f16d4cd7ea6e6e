"""mSupply's tables: `msupply_sites` (one row per satellite; the primary, this server, is site 1 and has no
row), `msupply_queue` (each site's outgoing queue, one entry per record per site) and `msupply_sync_ids`
(the SyncIDs a site already pushed, so a resent push applies nothing twice)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class Site(Base):
    __tablename__ = "msupply_sites"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Basic auth carries no tenant, so a site name identifies one site across tenants.
    name: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    hardware_id: Mapped[str | None] = mapped_column(Text)
    store_id: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    name_id: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    supplying_store_id: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    supplying_store_name_id: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                    nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                    nullable=False)


class QueueEntry(Base):
    __tablename__ = "msupply_queue"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # from msupply_queue_id_seq: the queue order (a replaced entry takes a new id, so moves to the tail)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True,
                                    server_default=text("nextval('msupply_queue_id_seq')"))
    sync_id: Mapped[str] = mapped_column(Text, nullable=False)
    record_key: Mapped[str] = mapped_column(Text, nullable=False)
    record_type: Mapped[str] = mapped_column(Text, nullable=False)
    record_id: Mapped[str] = mapped_column(Text, nullable=False)
    sync_type: Mapped[str] = mapped_column(String(1), nullable=False)
    store_id: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    version: Mapped[int] = mapped_column(BigInteger, nullable=False)
    merge_keep: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    merge_delete: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    __table_args__ = (
        UniqueConstraint("tenant_id", "site_id", "record_key", name="uq_msupply_queue_record"),
        Index("ix_msupply_queue_sync_id", "tenant_id", "site_id", "sync_id"),
    )


class PushedSyncId(Base):
    """A SyncID a site pushed, and the job that applied it."""
    __tablename__ = "msupply_sync_ids"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_id: Mapped[str] = mapped_column(Text, primary_key=True)
    job_id = mapped_column(UUID(as_uuid=True), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                    nullable=False)
