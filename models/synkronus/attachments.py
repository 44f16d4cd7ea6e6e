"""The SQL of Synkronus attachments: immutable files of a tenant, each a content-addressed blob, and the
operations (`create`, `delete`) a client replays from the attachment manifest.

Every change takes the next value of the tenant's version counter (`sync_counters`, the one observations
use), with the counter row locked until commit, so attachment versions follow commit order just as
record versions do and a manifest read from any `since_version` never skips a late commit. Functions take
a session and never commit."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models import engine
from models.blobs import register_blob
from models.ids import parse_uuid
from models.synkronus import NAMESPACE
from models.synkronus.tables import SynkronusUpload


class AttachmentExists(Exception):
    """The tenant already has an attachment with this id (attachments are immutable)."""


@dataclass
class Attachment:
    attachment_id: str
    sha256: str
    size: int
    content_type: str
    version: int


@dataclass
class Created:
    version: int
    deduplicated: bool  # the same bytes were already stored (one blob serves both)


def next_version(session: Session, tenant_id: str) -> int:
    """Take the tenant's next version: the counter row stays locked until the caller's commit."""
    engine.ensure_counter(session, tenant_id)
    value = session.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t FOR UPDATE"),
                            {"t": tenant_id}).scalar_one()
    version = int(value) + 1
    session.execute(text("UPDATE sync_counters SET value = :v WHERE tenant_id = :t"), {"v": version, "t": tenant_id})
    return version


def get(session: Session, tenant_id: str, attachment_id: str) -> Attachment | None:
    row = session.execute(text("""
        SELECT attachment_id, sha256, size, content_type, version FROM synkronus_attachments
         WHERE tenant_id = :t AND attachment_id = :a"""), {"t": tenant_id, "a": attachment_id}).first()
    return None if row is None else Attachment(*row)


def blob_known(session: Session, sha256: str) -> bool:
    return session.execute(text("SELECT 1 FROM blobs WHERE sha256 = :s"), {"s": sha256}).first() is not None


def create(session: Session, tenant_id: str, attachment_id: str, *, sha256: str, size: int, content_type: str,
           actor: str | None) -> Created:
    """Register the stored blob, add the attachment and its `create` operation (for every client) at the
    tenant's next version. Raises AttachmentExists when the id is taken (the caller rolls back)."""
    deduplicated = blob_known(session, sha256)
    register_blob(session, sha256, size, content_type)
    version = next_version(session, tenant_id)
    inserted = session.execute(text("""
        INSERT INTO synkronus_attachments (tenant_id, attachment_id, sha256, size, content_type, created_by, version)
        VALUES (:t, :a, :s, :n, :ct, :by, :v) ON CONFLICT DO NOTHING RETURNING 1"""),
        {"t": tenant_id, "a": attachment_id, "s": sha256, "n": size, "ct": content_type, "by": actor,
         "v": version}).first()
    if inserted is None:
        raise AttachmentExists(attachment_id)
    _record(session, tenant_id, attachment_id, "create", version, sha256=sha256, size=size,
            content_type=content_type, actor=actor)
    return Created(version, deduplicated)


def delete(session: Session, tenant_id: str, attachment_id: str, *, actor: str | None) -> int | None:
    """Remove the attachment and record a `delete` operation: its version, or None when there is none.
    The blob stays (another attachment may share it); the sweep removes unreferenced blobs."""
    version = next_version(session, tenant_id)
    gone = session.execute(text("""
        DELETE FROM synkronus_attachments WHERE tenant_id = :t AND attachment_id = :a RETURNING 1"""),
        {"t": tenant_id, "a": attachment_id}).first()
    if gone is None:
        return None  # the caller rolls back, which returns the version taken
    _record(session, tenant_id, attachment_id, "delete", version, actor=actor)
    return version


def _record(session: Session, tenant_id: str, attachment_id: str, operation: str, version: int, *,
            sha256: str | None = None, size: int | None = None, content_type: str | None = None,
            actor: str | None = None, client_id: str | None = None) -> None:
    session.execute(text("""
        INSERT INTO synkronus_attachment_operations
               (tenant_id, attachment_id, operation, version, client_id, sha256, size, content_type, actor)
        VALUES (:t, :a, :op, :v, :c, :s, :n, :ct, :by)"""),
        {"t": tenant_id, "a": attachment_id, "op": operation, "v": version, "c": client_id, "s": sha256,
         "n": size, "ct": content_type, "by": actor})


def manifest(session: Session, tenant_id: str, *, client_id: str, since: int,
             have_hashes: list[str] | None = None) -> tuple[int, list]:
    """(current_version, operations): the latest operation per attachment after `since` for this client
    (or for every client), sorted by version. Downloads of content in `have_hashes` are left out. The
    counter is read first, as a pull does: everything at or below it is committed."""
    current = engine.current_version(session, tenant_id)
    rows = session.execute(text("""
        SELECT attachment_id, operation, version, sha256, size, content_type FROM (
            SELECT DISTINCT ON (attachment_id) attachment_id, operation, version, sha256, size, content_type
              FROM synkronus_attachment_operations
             WHERE tenant_id = :t AND version > :since AND (client_id = :c OR client_id IS NULL)
             ORDER BY attachment_id, version DESC
        ) latest
         WHERE operation = 'delete' OR NOT (sha256 = ANY(CAST(:have AS text[])))
         ORDER BY version"""), {"t": tenant_id, "since": since, "c": client_id, "have": have_hashes or []}).all()
    if rows:
        current = max(current, rows[-1].version)
    return current, rows


# --- resumable uploads ------------------------------------------------------------------------------

def start_upload(session: Session, tenant_id: str, attachment_id: str, *, declared_size: int | None,
                 content_type: str | None, actor: str | None):
    upload = SynkronusUpload(tenant_id=tenant_id, attachment_id=attachment_id, declared_size=declared_size,
                             content_type=content_type, created_by=actor)
    session.add(upload)
    session.flush()
    return upload


def find_upload(session: Session, tenant_id: str, upload_id: str, *, lock: bool):
    """The tenant's upload (locked for this transaction when `lock`, so two chunks of one upload cannot
    interleave), or None for an unknown id, a malformed one, or another tenant's."""
    parsed = parse_uuid(upload_id)
    if parsed is None:
        return None
    query = select(SynkronusUpload).where(SynkronusUpload.id == parsed, SynkronusUpload.tenant_id == tenant_id)
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


# --- the sweep of unreferenced attachments ------------------------------------------------------------

def tenants_with_attachments(session: Session) -> list[str]:
    return list(session.execute(text("SELECT DISTINCT tenant_id FROM synkronus_attachments")).scalars())


def sweep(session: Session, tenant_id: str, *, grace_seconds: float, actor: str = "sweep") -> list[str]:
    """Mark the tenant's attachments that no live record names (a string value anywhere in an
    observation's data equal to the id) and remove those unreferenced for `grace_seconds`, each with a
    `delete` operation; the removed ids. A referenced attachment is never removed: the counter row is
    locked first, and a push merges its records under the same lock, so no reference can commit between
    the check and the delete. Blobs stay (other attachments or dialects may share them)."""
    engine.ensure_counter(session, tenant_id)
    session.execute(text("SELECT value FROM sync_counters WHERE tenant_id = :t FOR UPDATE"), {"t": tenant_id})
    session.execute(text("""
        WITH refs AS (
            SELECT DISTINCT v #>> '{}' AS value
              FROM records r, jsonb_path_query(r.data, 'strict $.**') v
             WHERE r.tenant_id = :t AND r.namespace = :ns AND NOT r.deleted AND r.data IS NOT NULL
               AND jsonb_typeof(v) = 'string'
        )
        UPDATE synkronus_attachments a
           SET unreferenced_since = CASE WHEN EXISTS (SELECT 1 FROM refs WHERE refs.value = a.attachment_id)
                                         THEN NULL ELSE COALESCE(a.unreferenced_since, now()) END
         WHERE a.tenant_id = :t"""), {"t": tenant_id, "ns": NAMESPACE})
    gone = list(session.execute(text("""
        DELETE FROM synkronus_attachments
         WHERE tenant_id = :t AND unreferenced_since IS NOT NULL
           AND unreferenced_since <= now() - make_interval(secs => :grace)
           AND unreferenced_since < now()
        RETURNING attachment_id"""), {"t": tenant_id, "grace": float(grace_seconds)}).scalars())
    for attachment_id in sorted(gone):
        _record(session, tenant_id, attachment_id, "delete", next_version(session, tenant_id), actor=actor)
    return sorted(gone)
