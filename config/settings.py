"""Settings: read once from the environment into a frozen object that every layer receives."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

QUEUE_INGEST = "ingest"
QUEUE_INDEX = "index"
QUEUE_EXPORTS = "exports"
QUEUE_MAINTENANCE = "maintenance"
ALL_QUEUES = (QUEUE_INGEST, QUEUE_INDEX, QUEUE_EXPORTS, QUEUE_MAINTENANCE)

# The one place that names the dialects. Each is a subpackage of the same name in models/, workers/ and
# web/ (see docs/dialects.md); `FIELDSYNC_DIALECTS` may narrow the list for one deployment.
DIALECTS = ("synkronus", "msupply", "digit")


@dataclass(frozen=True)
class Settings:
    # Engines. None means "start the embedded one" (only `fieldsync serve` does that).
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path("./var")

    # Auth
    jwt_secret: str = "change-me-in-production"
    access_token_minutes: int = 24 * 60
    refresh_token_days: int = 7
    jwt_leeway_seconds: int = 60
    bcrypt_rounds: int = 12
    admin_username: str | None = None
    admin_password: str | None = None

    # Database timeouts: connecting, and per statement / lock wait for web requests and for workers
    # (0 = no limit). Workers run long statements (bulk applies, dumps), so theirs is longer.
    db_connect_timeout_seconds: int = 5
    db_statement_timeout_ms: int = 30_000
    db_lock_timeout_ms: int = 10_000
    worker_statement_timeout_ms: int = 3_600_000

    # Limits
    max_body_bytes: int = 64 * 1024 * 1024
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024
    max_records_per_push: int = 10_000
    max_bundle_bytes: int = 256 * 1024 * 1024   # a Synkronus app bundle (the ZIP as uploaded)

    # Synkronus app bundles: versions kept per tenant (the active one is never dropped)
    max_versions_kept: int = 5

    # Sync behaviour
    sync_wait_seconds: float = 20.0
    receipt_retention_days: int = 7
    chunk_size: int = 1000
    # How long an index run waits after the first push that asks for it: the pushes of that window join
    # the one run, and the read models lag behind by about this much.
    index_delay_seconds: float = 1.0

    # Jobs
    job_lease_seconds: int = 60
    job_max_attempts: int = 5
    sweep_interval_seconds: float = 30.0
    requeue_after_seconds: float = 60.0
    # Worker processes `serve` starts. Jobs spend much of their time waiting on PostgreSQL (a commit, the
    # tenant's counter lock), so more processes than cores keep both busy.
    worker_concurrency: int = 4
    task_soft_time_limit: int = 3300
    task_time_limit: int = 3600

    # Exports: schedules write only below export_target_root (None: <data_dir>/export-targets); download
    # links stay valid export_url_seconds; a file flattens at most export_max_columns data keys (the rest
    # go to one `data_json` column); rows per Parquet row group.
    export_target_root: Path | None = None
    export_url_seconds: int = 3600
    export_max_columns: int = 1000
    export_row_group_rows: int = 16_384

    # Web
    public_base_url: str | None = None
    log_level: str = "INFO"
    log_json: bool = True
    server_version: str = "1.0.3"

    # Ops console and metrics
    ops_heartbeat_seconds: float = 5.0        # how often each worker process writes its heartbeat
    ops_worker_timeout_seconds: float = 20.0  # a worker whose last heartbeat is older shows as dead
    ops_silent_days: int = 3                  # a device unseen this long is "silent"
    ops_cookie_secure: bool | None = None     # the session cookie's Secure flag; None: when the request is HTTPS
    metrics_token: str | None = None          # bearer token /metrics asks for; unset: /metrics answers 404
    metrics_dir: Path | None = None           # PROMETHEUS_MULTIPROC_DIR; None: data_dir/metrics

    # Dialects served, and each one's own options: env `<DIALECT>_<OPTION>` (e.g. MSUPPLY_ROUTING_FILE)
    # becomes options["msupply"]["routing_file"].
    dialects: tuple[str, ...] = DIALECTS
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def metrics_path(self) -> Path:
        """Where every process of this deployment writes its metric files (prometheus_client's
        multiprocess mode), so that gunicorn workers and Celery children add up."""
        return self.metrics_dir if self.metrics_dir is not None else self.data_dir / "metrics"

    @property
    def export_dir(self) -> Path:
        """Where export runs are written (one directory per run)."""
        return self.data_dir / "exports"

    @property
    def export_root(self) -> Path:
        """The only directory a schedule's target may be in."""
        return self.export_target_root if self.export_target_root is not None else self.data_dir / "export-targets"

    def option(self, dialect: str, name: str, default: str | None = None) -> str | None:
        return (self.options.get(dialect) or {}).get(name, default)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


class MissingSecret(RuntimeError):
    """A process that signs or checks tokens was started without its own JWT_SECRET."""


def require_secret(settings: Settings) -> Settings:
    """Refuse to run a server process on the public default signing key (anyone could forge tokens with
    it). Process entry points call this; `fieldsync serve` in embedded mode generates a secret first."""
    if not settings.jwt_secret or settings.jwt_secret == Settings.jwt_secret:
        raise MissingSecret("JWT_SECRET is not set: set it to a long random string (for example "
                            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`); "
                            "fieldsync will not sign tokens with a default key")
    return settings


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from an environment mapping (os.environ when not given)."""
    env = os.environ if environ is None else environ

    def get(name: str, default=None):
        value = env.get(name)
        return default if value in (None, "") else value

    dialects = DIALECTS
    if get("FIELDSYNC_DIALECTS"):
        asked = tuple(d.strip() for d in get("FIELDSYNC_DIALECTS").split(",") if d.strip())
        unknown = set(asked) - set(DIALECTS)
        if unknown:
            raise ValueError(f"FIELDSYNC_DIALECTS names unknown dialects: {', '.join(sorted(unknown))}")
        dialects = asked
    options: dict[str, dict[str, str]] = {}
    for name in DIALECTS:
        prefix = name.upper() + "_"
        options[name] = {key[len(prefix):].lower(): value for key, value in env.items()
                         if key.startswith(prefix) and value not in (None, "")}

    return Settings(
        dialects=dialects,
        options=options,
        database_url=get("DATABASE_URL"),
        redis_url=get("REDIS_URL"),
        data_dir=Path(get("FIELDSYNC_DATA_DIR", "./var")),
        jwt_secret=get("JWT_SECRET", Settings.jwt_secret),
        access_token_minutes=int(get("ACCESS_TOKEN_MINUTES", Settings.access_token_minutes)),
        refresh_token_days=int(get("REFRESH_TOKEN_DAYS", Settings.refresh_token_days)),
        bcrypt_rounds=int(get("BCRYPT_ROUNDS", Settings.bcrypt_rounds)),
        admin_username=get("ADMIN_USERNAME"),
        admin_password=get("ADMIN_PASSWORD"),
        db_connect_timeout_seconds=int(get("DB_CONNECT_TIMEOUT_SECONDS", Settings.db_connect_timeout_seconds)),
        db_statement_timeout_ms=int(get("DB_STATEMENT_TIMEOUT_MS", Settings.db_statement_timeout_ms)),
        db_lock_timeout_ms=int(get("DB_LOCK_TIMEOUT_MS", Settings.db_lock_timeout_ms)),
        worker_statement_timeout_ms=int(get("WORKER_STATEMENT_TIMEOUT_MS", Settings.worker_statement_timeout_ms)),
        max_body_bytes=int(get("MAX_BODY_BYTES", Settings.max_body_bytes)),
        max_upload_bytes=int(get("MAX_UPLOAD_BYTES", Settings.max_upload_bytes)),
        max_records_per_push=int(get("MAX_RECORDS_PER_PUSH", Settings.max_records_per_push)),
        max_bundle_bytes=int(get("MAX_BUNDLE_BYTES", Settings.max_bundle_bytes)),
        max_versions_kept=max(1, int(get("MAX_VERSIONS_KEPT", Settings.max_versions_kept))),
        sync_wait_seconds=float(get("SYNC_WAIT_SECONDS", Settings.sync_wait_seconds)),
        receipt_retention_days=int(get("RECEIPT_RETENTION_DAYS", Settings.receipt_retention_days)),
        chunk_size=int(get("CHUNK_SIZE", Settings.chunk_size)),
        index_delay_seconds=max(0.0, float(get("INDEX_DELAY_SECONDS", Settings.index_delay_seconds))),
        job_lease_seconds=int(get("JOB_LEASE_SECONDS", Settings.job_lease_seconds)),
        job_max_attempts=int(get("JOB_MAX_ATTEMPTS", Settings.job_max_attempts)),
        sweep_interval_seconds=float(get("SWEEP_INTERVAL_SECONDS", Settings.sweep_interval_seconds)),
        requeue_after_seconds=float(get("REQUEUE_AFTER_SECONDS", Settings.requeue_after_seconds)),
        worker_concurrency=max(1, int(get("WORKER_CONCURRENCY", Settings.worker_concurrency))),
        export_target_root=Path(get("EXPORT_TARGET_ROOT")) if get("EXPORT_TARGET_ROOT") else None,
        export_url_seconds=int(get("EXPORT_URL_SECONDS", Settings.export_url_seconds)),
        export_max_columns=max(1, int(get("EXPORT_MAX_COLUMNS", Settings.export_max_columns))),
        export_row_group_rows=max(1, int(get("EXPORT_ROW_GROUP_ROWS", Settings.export_row_group_rows))),
        public_base_url=get("PUBLIC_BASE_URL"),
        ops_heartbeat_seconds=float(get("OPS_HEARTBEAT_SECONDS", Settings.ops_heartbeat_seconds)),
        ops_worker_timeout_seconds=float(get("OPS_WORKER_TIMEOUT_SECONDS", Settings.ops_worker_timeout_seconds)),
        ops_silent_days=int(get("OPS_SILENT_DAYS", Settings.ops_silent_days)),
        ops_cookie_secure=None if get("OPS_COOKIE_SECURE") is None else _bool(get("OPS_COOKIE_SECURE"), False),
        metrics_token=get("METRICS_TOKEN"),
        metrics_dir=Path(get("PROMETHEUS_MULTIPROC_DIR")) if get("PROMETHEUS_MULTIPROC_DIR") else None,
        log_level=get("LOG_LEVEL", "INFO").upper(),
        log_json=_bool(get("LOG_JSON"), True),
    )
