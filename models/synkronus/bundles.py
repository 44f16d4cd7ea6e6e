"""The SQL of Synkronus app bundles: per tenant, numbered versions (shown as `0001`, `0002`, …), each a
ZIP blob with its APP_INFO.json and file index; at most one active. Functions take a session and never
commit."""
from __future__ import annotations

import re

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from models.synkronus.tables import SynkronusBundleFile, SynkronusBundleVersion

_NAME = re.compile(r"^[0-9]{1,9}$")


def version_name(number: int) -> str:
    return f"{number:04d}"


def parse_version(name) -> int | None:
    """The number of a version name (`0003`, or `3`), or None for anything else."""
    if not isinstance(name, str) or not _NAME.match(name):
        return None
    number = int(name)
    return number if number > 0 else None


def lock_tenant(session: Session, tenant_id: str) -> None:
    """Serialise bundle changes of one tenant (numbering, activation, pruning) until the transaction ends."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('synkronus.bundles'), hashtext(:t))"),
                    {"t": tenant_id})


def next_number(session: Session, tenant_id: str) -> int:
    top = session.execute(select(func.max(SynkronusBundleVersion.number))
                          .where(SynkronusBundleVersion.tenant_id == tenant_id)).scalar()
    return (top or 0) + 1


def add_version(session: Session, *, tenant_id: str, number: int, sha256: str, size: int, app_info: dict,
                files: list[dict], created_by: str | None) -> SynkronusBundleVersion:
    """Store a version (not active) and its files ({path, sha256, size, mime_type})."""
    row = SynkronusBundleVersion(tenant_id=tenant_id, number=number, sha256=sha256, size=size,
                                 app_info=app_info, active=False, created_by=created_by)
    session.add(row)
    session.flush()
    session.add_all(SynkronusBundleFile(bundle_id=row.id, path=f["path"], sha256=f["sha256"], size=f["size"],
                                        mime_type=f["mime_type"]) for f in files)
    session.flush()
    session.refresh(row)
    return row


def list_versions(session: Session, tenant_id: str) -> list[SynkronusBundleVersion]:
    """Newest first."""
    return list(session.execute(select(SynkronusBundleVersion)
                                .where(SynkronusBundleVersion.tenant_id == tenant_id)
                                .order_by(SynkronusBundleVersion.number.desc())).scalars())


def get_version(session: Session, tenant_id: str, number: int) -> SynkronusBundleVersion | None:
    return session.execute(select(SynkronusBundleVersion).where(
        SynkronusBundleVersion.tenant_id == tenant_id, SynkronusBundleVersion.number == number)).scalar()


def active_version(session: Session, tenant_id: str) -> SynkronusBundleVersion | None:
    return session.execute(select(SynkronusBundleVersion).where(
        SynkronusBundleVersion.tenant_id == tenant_id, SynkronusBundleVersion.active.is_(True))).scalar()


def newest_version(session: Session, tenant_id: str) -> SynkronusBundleVersion | None:
    return session.execute(select(SynkronusBundleVersion)
                           .where(SynkronusBundleVersion.tenant_id == tenant_id)
                           .order_by(SynkronusBundleVersion.number.desc()).limit(1)).scalar()


def previous_version(session: Session, tenant_id: str, number: int) -> SynkronusBundleVersion | None:
    return session.execute(select(SynkronusBundleVersion)
                           .where(SynkronusBundleVersion.tenant_id == tenant_id,
                                  SynkronusBundleVersion.number < number)
                           .order_by(SynkronusBundleVersion.number.desc()).limit(1)).scalar()


def activate(session: Session, tenant_id: str, number: int) -> SynkronusBundleVersion | None:
    """Make the version the tenant's active one (None when it does not exist). Call lock_tenant first."""
    row = get_version(session, tenant_id, number)
    if row is None:
        return None
    if not row.active:
        session.execute(update(SynkronusBundleVersion)
                        .where(SynkronusBundleVersion.tenant_id == tenant_id, SynkronusBundleVersion.active.is_(True))
                        .values(active=False))
        session.flush()
        session.execute(update(SynkronusBundleVersion).where(SynkronusBundleVersion.id == row.id)
                        .values(active=True, activated_at=func.now()))
        session.flush()
        session.refresh(row)
    return row


def files_of(session: Session, bundle_id: int) -> list[SynkronusBundleFile]:
    """The version's files, sorted by path."""
    return list(session.execute(select(SynkronusBundleFile).where(SynkronusBundleFile.bundle_id == bundle_id)
                                .order_by(SynkronusBundleFile.path)).scalars())


def file_of(session: Session, bundle_id: int, path: str) -> SynkronusBundleFile | None:
    return session.get(SynkronusBundleFile, (bundle_id, path))


def prune(session: Session, tenant_id: str, keep: int) -> list[int]:
    """Drop all but the newest `keep` versions, never the active one; returns the numbers dropped. The
    ZIP blobs stay in the content-addressed store (another version may hold the same content)."""
    rows = list_versions(session, tenant_id)
    dropped = [row for row in rows[keep:] if not row.active]
    if dropped:
        session.execute(delete(SynkronusBundleVersion).where(
            SynkronusBundleVersion.id.in_([row.id for row in dropped])))
        session.flush()
    return [row.number for row in dropped]
