"""GET /dataexport/parquet's job: one `<form_type>.parquet` per form type with live observations, in
the shape of Synkronus 1.0.3 (its fixed columns, `data_<key>` columns whose type counts a JSON null as a
type of its own, rows by created_at), through the engine's exporter; the ZIP goes to the blob store."""
from __future__ import annotations

import errno
import shutil

from models.blobs import register_blob
from models.exports import Scope
from models.synkronus import NAMESPACE
from models.synkronus.store import EXPORT_COLUMNS, EXPORT_ORDER
from workers.errors import JobFailed
from workers.exports import Layout, export_files, job_progress, zip_dir

LAYOUT = Layout(fixed=EXPORT_COLUMNS, prefix="data_", null_is_a_type=True, live_only=True, order_by=EXPORT_ORDER)
ZIP_TYPE = "application/zip"


def run_export_parquet(ctx):
    settings = ctx.settings
    scope = Scope(tenant_id=ctx.job.tenant_id, namespace=NAMESPACE, since=0, until=int(ctx.job.params["until"]),
                  live_only=True)
    tmp = settings.export_dir / f".tmp-{ctx.job.id}-{ctx.job.attempts}"
    try:
        tmp.mkdir(parents=True)
        result = export_files(ctx.runtime.sessions(), scope, LAYOUT, ["record_type"], tmp,
                              max_columns=settings.export_max_columns,
                              row_group_rows=settings.export_row_group_rows,
                              progress=job_progress(ctx))
        archive = tmp / "export.zip"
        zip_dir([(f["path"], tmp / f["path"]) for f in result["files"]], archive)
        with open(archive, "rb") as f:
            sha, size = ctx.runtime.blobs.put_stream(f, chunk_size=1 << 20)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise JobFailed("disk_full", "no space left on the export volume; nothing of this export was kept") from None
        raise JobFailed("export_write_failed",
                        f"the export could not be written ({exc.strerror or type(exc).__name__})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with ctx.session() as session:
        register_blob(session, sha, size, ZIP_TYPE)
        ctx.progress(session, done=result["rows"], total=result["rows"], counts={"rows": result["rows"]})
    return {"sha256": sha, "size": size, "rows": result["rows"],
            "files": [{"path": f["path"], "rows": f["rows"]} for f in result["files"]]}
