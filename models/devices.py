"""Devices in the field as requests arrive: one row per (tenant, dialect, client), upserted once per
push or pull request (never per record) by `touch`. The dialect names its client (a Synkronus
`client_id`, an mSupply site, a DIGIT user) and the app version its client sends; the core knows no
dialect."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Integer, String, func, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base

CLIENT_MAX = 256
VERSION_MAX = 128
ERROR_MAX = 256
ACTIVITIES = ("push", "pull", "ack")  # ack: a device confirmed what it received (moves its pulled version)


class Device(Base):
    __tablename__ = "devices"
    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    dialect: Mapped[str] = mapped_column(String(32), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_MAX), primary_key=True)
    app_version: Mapped[str | None] = mapped_column(String(VERSION_MAX))
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                       nullable=False)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                      nullable=False)
    last_push_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_pull_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX))
    last_error_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    pushes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    pulls: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    records_pushed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # the version the client last pulled up to (where the dialect has versions): pull lag = counter - this
    last_pulled_version: Mapped[int | None] = mapped_column(BigInteger)
    # No index on the columns every request changes: the upsert stays a HOT update (the migration leaves
    # room for it with fillfactor 70), and the console's lists sort a few thousand rows at most.


_TOUCH = text("""
    INSERT INTO devices AS d (tenant_id, dialect, client_id, app_version, first_seen_at, last_seen_at,
                              last_push_at, last_pull_at, last_error, last_error_at, pushes, pulls,
                              records_pushed, last_pulled_version)
    SELECT :tenant, :dialect, :client, :version, now(), now(),
           CASE WHEN :pushes > 0 THEN now() END, CASE WHEN :pulls > 0 THEN now() END,
           :error, CASE WHEN CAST(:error AS text) IS NOT NULL THEN now() END,
           :pushes, :pulls, :records, :pulled
      FROM (SELECT CASE WHEN :lazy THEN set_config('synchronous_commit', 'off', true) END) AS commit_mode
    ON CONFLICT (tenant_id, dialect, client_id) DO UPDATE SET
        app_version = COALESCE(EXCLUDED.app_version, d.app_version),
        last_seen_at = now(),
        last_push_at = COALESCE(EXCLUDED.last_push_at, d.last_push_at),
        last_pull_at = COALESCE(EXCLUDED.last_pull_at, d.last_pull_at),
        last_error = COALESCE(EXCLUDED.last_error, d.last_error),
        last_error_at = COALESCE(EXCLUDED.last_error_at, d.last_error_at),
        pushes = d.pushes + EXCLUDED.pushes,
        pulls = d.pulls + EXCLUDED.pulls,
        records_pushed = d.records_pushed + EXCLUDED.records_pushed,
        last_pulled_version = COALESCE(EXCLUDED.last_pulled_version, d.last_pulled_version)
""")


def _cap(value, limit):
    if value is None:
        return None
    value = str(value).replace("\x00", "")
    value = value.encode("utf-8", "replace").decode("utf-8", "replace") if not value.isascii() else value
    return value[:limit] or None


def touch(session: Session, *, tenant_id: str, dialect: str, client_id: str, activity: str,
          app_version: str | None = None, records: int = 0, error: str | None = None,
          pulled_version: int | None = None, lazy_commit: bool = False) -> None:
    """Record one request of a device: a single upsert (the caller commits). `lazy_commit`: the
    transaction's commit does not wait for the WAL flush (for a transaction that holds only this)."""
    if activity not in ACTIVITIES:
        raise ValueError(f"activity must be one of {ACTIVITIES}")
    request = {"tenant_id": tenant_id, "dialect": dialect, "client_id": client_id, "activity": activity,
               "app_version": app_version, "records": records, "error": error, "pulled_version": pulled_version}
    touch_requests(session, lazy_commit=lazy_commit, **per_device([request])[0])


def per_device(requests) -> list[dict]:
    """Requests (dicts of touch's arguments), in arrival order, as one entry per device for touch_requests:
    pushes and pulls counted, records summed, the latest app version, error and pulled version (of a
    pull or an ack) kept."""
    merged: dict[tuple, dict] = {}
    for request in requests:
        key = (request["tenant_id"], request["dialect"], request["client_id"])
        entry = merged.get(key)
        if entry is None:
            entry = merged[key] = {"tenant_id": key[0], "dialect": key[1], "client_id": key[2], "pushes": 0,
                                   "pulls": 0, "records": 0, "app_version": None, "pulled_version": None,
                                   "error": None}
        activity = request["activity"]
        entry["pushes"] += activity == "push"
        entry["pulls"] += activity == "pull"
        entry["records"] += max(0, int(request.get("records") or 0))
        for field, value in (("app_version", request.get("app_version")), ("error", request.get("error")),
                             ("pulled_version", request.get("pulled_version") if activity in ("pull", "ack")
                              else None)):
            if value is not None:
                entry[field] = value
    return list(merged.values())


def touch_requests(session: Session, *, tenant_id: str, dialect: str, client_id: str, pushes: int, pulls: int,
                   app_version: str | None = None, records: int = 0, error: str | None = None,
                   pulled_version: int | None = None, lazy_commit: bool = False) -> None:
    """Record several requests of one device at once (their pushes and pulls counted, their records
    summed; the app version, error and pulled version the latest ones): a single upsert."""
    client = _cap(client_id, CLIENT_MAX)
    if client is None:
        return
    session.execute(_TOUCH, {"tenant": tenant_id, "dialect": dialect, "client": client,
                             "version": _cap(app_version, VERSION_MAX), "pushes": max(0, int(pushes)),
                             "pulls": max(0, int(pulls)), "error": _cap(error, ERROR_MAX),
                             "records": max(0, int(records or 0)), "pulled": pulled_version, "lazy": lazy_commit})
