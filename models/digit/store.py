"""The SQL that serves DIGIT Health: filestore entries, resumable uploads, campaign forms and sync jobs
(tables in models/digit/tables.py). Functions take a session and never commit it."""
from __future__ import annotations

import uuid

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from models.blobs import register_blob
from models.digit import SYNC_FILE
from models.digit.tables import DigitFile, DigitForm, DigitUpload
from models.ids import parse_uuid
from models.tables import Job


# --- files -------------------------------------------------------------------------------------------

def add_file(session: Session, *, tenant_id: str, sha256: str, size: int, filename: str | None,
             content_type: str | None, created_by: str | None, module: str | None = None) -> DigitFile:
    register_blob(session, sha256, size, content_type)
    row = DigitFile(id=uuid.uuid4(), tenant_id=tenant_id, sha256=sha256, size=size, filename=filename,
                    content_type=content_type, module=module, created_by=created_by)
    session.add(row)
    session.flush()
    return row


def get_file(session: Session, file_id) -> DigitFile | None:
    parsed = parse_uuid(file_id)
    if parsed is None:
        return None
    return session.get(DigitFile, parsed)


# --- uploads -----------------------------------------------------------------------------------------

def lock_upload(session: Session, upload_id) -> DigitUpload | None:
    """The upload row, locked for this transaction so two PATCHes of one upload cannot interleave."""
    parsed = parse_uuid(upload_id)
    if parsed is None:
        return None
    return session.execute(select(DigitUpload).where(DigitUpload.id == parsed).with_for_update()).scalar_one_or_none()


def get_upload(session: Session, upload_id) -> DigitUpload | None:
    parsed = parse_uuid(upload_id)
    if parsed is None:
        return None
    return session.get(DigitUpload, parsed)


# --- forms -------------------------------------------------------------------------------------------

class VersionNotNewer(Exception):
    def __init__(self, latest: int):
        super().__init__(f"version must be greater than the latest published version {latest}")
        self.latest = latest


def publish_form(session: Session, body: dict, created_by: str | None = None) -> DigitForm:
    """Store a new form version; refuses a version not above the latest for (tenant, campaign, schema)."""
    tenant, campaign, schema, version = body["tenantId"], body["campaignId"], body["schema"], body["version"]
    # Serialise publishers of the same form so the "newer than latest" check cannot race.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                    {"k": f"digit-form\n{tenant}\n{campaign}\n{schema}"})
    latest = session.execute(select(func.max(DigitForm.version)).where(
        DigitForm.tenant_id == tenant, DigitForm.campaign_id == campaign, DigitForm.schema == schema)).scalar()
    if latest is not None and version <= latest:
        raise VersionNotNewer(latest)
    row = DigitForm(tenant_id=tenant, campaign_id=campaign, schema=schema, version=version, body=body,
                    created_by=created_by)
    session.add(row)
    session.flush()
    return row


def latest_forms(session: Session, *, tenant_id: str, campaign_id: str,
                 schemas: list[str] | None = None) -> list[DigitForm]:
    """The latest version of each form of a campaign (optionally only the given schemas)."""
    stmt = (select(DigitForm).ext(distinct_on(DigitForm.schema))
            .where(DigitForm.tenant_id == tenant_id, DigitForm.campaign_id == campaign_id)
            .order_by(DigitForm.schema, DigitForm.version.desc()))
    if schemas is not None:
        stmt = stmt.where(DigitForm.schema.in_(schemas))
    return list(session.execute(stmt).scalars())


def list_forms(session: Session, *, tenant_ids: list[str] | None, campaign_id: str | None = None,
               schema: str | None = None, limit: int = 500) -> list[DigitForm]:
    stmt = select(DigitForm).order_by(DigitForm.tenant_id, DigitForm.campaign_id, DigitForm.schema,
                                      DigitForm.version.desc()).limit(limit)
    if tenant_ids is not None:
        stmt = stmt.where(DigitForm.tenant_id.in_(tenant_ids))
    if campaign_id:
        stmt = stmt.where(DigitForm.campaign_id == campaign_id)
    if schema:
        stmt = stmt.where(DigitForm.schema == schema)
    return list(session.execute(stmt).scalars())


def form_versions(session: Session, *, tenant_id: str, campaign_id: str, versions: dict[str, int]) -> dict[str, dict]:
    """Form bodies by schema for exactly the given versions (a sync job validates against the versions
    that were current when it was created, on every delivery)."""
    if not versions:
        return {}
    rows = session.execute(select(DigitForm).where(
        DigitForm.tenant_id == tenant_id, DigitForm.campaign_id == campaign_id,
        DigitForm.schema.in_(list(versions)))).scalars()
    return {row.schema: row.body for row in rows if versions.get(row.schema) == row.version}


# --- sync jobs ---------------------------------------------------------------------------------------

def find_sync(session: Session, sync_id: str) -> Job | None:
    parsed = parse_uuid(sync_id)
    if parsed is None:
        return None
    job = session.get(Job, parsed)
    return job if job is not None and job.kind == SYNC_FILE.name else None


def save_scan(session: Session, job_id, scan: dict, total: int) -> None:
    """Keep the file's layout (found by the scan pass) on the job, so a redelivery can skip the scan."""
    session.execute(text("""
        UPDATE jobs SET params = params || jsonb_build_object('scan', CAST(:scan AS jsonb)),
               progress_total = :total, updated_at = clock_timestamp()
         WHERE id = :id AND status = 'RUNNING'
    """), {"id": str(job_id), "scan": orjson.dumps(scan).decode(), "total": total})


def job_scan(session: Session, job_id) -> tuple[dict | None, int | None]:
    row = session.execute(text("SELECT params -> 'scan' AS scan, progress_total FROM jobs WHERE id = :id"),
                          {"id": str(job_id)}).first()
    return (row.scan, row.progress_total) if row is not None else (None, None)
