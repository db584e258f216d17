"""Settings: the only place environment variables are read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_cpu_limit() -> int | None:
    """A cgroup v2 CPU quota in whole CPUs, rounded up (a Kubernetes CPU limit); None if unlimited."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


class LeaseSettings(BaseModel):
    default_visibility_timeout_s: int = Field(30, ge=1, le=43_200)
    max_wait_s: float = Field(30, ge=0, le=300)
    reaper_interval_s: float = Field(0.25, gt=0, le=60)
    # A safety net only: NOTIFY wakes waiters; this re-polls in case a notification was missed.
    fallback_poll_s: float = Field(5.0, gt=0, le=60)


class JobDefaults(BaseModel):
    max_attempts: int = Field(5, ge=1, le=1000)
    backoff_initial_s: float = Field(1.0, gt=0, le=86_400)
    backoff_max_s: float = Field(3600.0, gt=0, le=7 * 86_400)
    backoff_multiplier: float = Field(2.0, ge=1, le=10)
    backoff_jitter: float = Field(0.2, ge=0, le=1)
    error_history: int = Field(20, ge=1, le=1000)
    max_payload_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    retention_s: int = Field(7 * 86_400, ge=60)
    dead_retention_s: int = Field(30 * 86_400, ge=60)
    # One ledger row per ended attempt (GET /v1/jobs/{id}/attempts); off only to measure its cost.
    attempt_ledger: bool = True


class DbSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # The Postgres schema holding every broker object (JOBBROKER_DB__SCHEMA). A plain lower-case
    # identifier, so it is never quoted and reads the same in SQL, settings and search_path.
    # ("schema" itself would shadow a pydantic method, hence the alias.)
    schema_name: str = Field("jobbroker", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    pool_min_size: int = Field(2, ge=0, le=100)
    pool_max_size: int = Field(20, ge=1, le=500)
    # Lease statements have a pool of their own (see store/db.py).
    lease_pool_max_size: int = Field(10, ge=1, le=500)
    # A lease's commit does not wait for its WAL flush: a crash may forget a lease, which only
    # delivers its job again (at-least-once allows that), while enqueues and acks stay durable;
    # an ack's own flush covers the lease before it. "on" makes leases wait too.
    lease_synchronous_commit: Literal["off", "local", "remote_write", "on", "remote_apply"] = "off"
    # PgBouncer in transaction mode cannot keep prepared statements: set 0 there.
    statement_cache_size: int = Field(256, ge=0, le=10_000)
    command_timeout_s: float = Field(30, gt=0, le=600)
    # The LISTEN connection's own URL (JOBBROKER_DB__LISTEN_URL), when requests go through a pooler
    # (PgBouncer in transaction mode cannot LISTEN): a direct one to the primary. Default: the database URL.
    listen_url: SecretStr | None = None
    migrate_on_start: bool = True

    @field_validator("schema_name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value.startswith("pg_") or value == "information_schema":
            raise ValueError(f"{value!r} is reserved by PostgreSQL")
        return value


class MaintenanceSettings(BaseModel):
    cleaner_interval_s: float = Field(60, gt=0, le=86_400)
    cleaner_batch: int = Field(5000, ge=1, le=100_000)
    # How often each replica looks for schedules that came due; a fire is late by at most this.
    cron_interval_s: float = Field(1.0, gt=0, le=60)
    # Leased jobs leave dead entries at the head of the ready index that every lease walks past
    # until a VACUUM; autovacuum comes at most once a minute, too rarely for a busy queue.
    vacuum: bool = True
    vacuum_interval_s: float = Field(2, gt=0, le=3600)
    vacuum_dead_rows: int = Field(20_000, ge=1)
    # How often each replica looks for a running redrive whose next batch is due.
    redrive_interval_s: float = Field(0.1, gt=0, le=60)


class MetricsSettings(BaseModel):
    """Prometheus /metrics (JOBBROKER_METRICS__*); see docs/operations.md."""

    # Ask for an API key with the `metrics` (or `admin`) scope on /metrics.
    require_auth: bool = False
    # Queue gauges are read from the database at scrape time, at most this often per process.
    refresh_s: float = Field(2.0, ge=0, le=300)
    # Label job metrics by job type as well as queue.
    type_labels: bool = True
    # Distinct queues (and types) labelled per process; later ones share the label `_other`.
    max_label_values: int = Field(1000, ge=1, le=100_000)


class PushSettings(BaseModel):
    """Webhook push delivery (JOBBROKER_PUSH__*); see docs/push.md."""

    # Run the dispatcher in this replica (API-only replicas may turn it off).
    enabled: bool = True
    # Subscriber addresses: any globally routable one when allow_public, plus these networks.
    # Loopback is allowed for development; production sets allowed_networks to [] or its own.
    allow_public: bool = True
    allowed_networks: tuple[IPvAnyNetwork, ...] = Field(("127.0.0.0/8", "::1/128"), validate_default=True)
    # When not empty, subscriber hosts must match one of these ("hooks.example.com", "*.example.com").
    allowed_hosts: tuple[str, ...] = ()
    require_https: bool = False
    secret_rotation_overlap_s: int = Field(86_400, ge=0, le=30 * 86_400)
    # A push lease lasts the subscription's timeout plus this, so the reaper only takes lost deliveries.
    lease_margin_s: int = Field(10, ge=1, le=3600)
    # How often a subscription at max_concurrency looks for room freed in another replica (no
    # notification says so). Idle ones wake on NOTIFY and re-poll every lease.fallback_poll_s.
    poll_interval_s: float = Field(1.0, gt=0, le=60)
    refresh_interval_s: float = Field(5.0, gt=0, le=300)
    max_result_bytes: int = Field(64 * 1024, ge=0, le=16 * 1024 * 1024)
    error_body_chars: int = Field(500, ge=0, le=10_000)
    max_retry_after_s: float = Field(86_400, ge=0, le=366 * 86_400)
    max_keepalive_connections: int = Field(100, ge=0, le=10_000)
    shutdown_grace_s: float = Field(5.0, ge=0, le=600)


class ServerSettings(BaseModel):
    """The HTTP server's connection limits (JOBBROKER_SERVER__*); see docs/operations.md.

    A client that holds a connection without finishing a request (slow headers, a trickled body, or
    nothing at all) is cut off, so connections cannot pile up until file descriptors run out.
    """

    # An idle keep-alive connection is closed after this long (longer than clients' own pool
    # expiry, httpx's 5 s, so the client closes first and never sends on a closing connection).
    keep_alive_s: float = Field(20, gt=0, le=3600)
    # From a connection's start (or a request's first byte) until its headers are complete.
    header_timeout_s: float = Field(10, gt=0, le=600)
    # From the headers until the whole body is in.
    body_timeout_s: float = Field(60, gt=0, le=3600)
    # Request line and headers together, at most.
    max_header_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Open connections per process; requests beyond it are answered 503 (long polls count).
    max_connections: int = Field(4096, ge=1, le=1_000_000)
    # On SIGTERM, requests in flight (long polls included) get this long to finish.
    shutdown_grace_s: float = Field(5, ge=0, le=600)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBBROKER_", env_nested_delimiter="__", extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    data_dir: Path = Path(".jobbroker")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65_535)
    # `jobbroker serve` processes: "auto" is one per CPU this process may run on (see serve_workers).
    workers: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = "auto"
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: str = Field("json", pattern="^(json|text)$")
    # The body of a batch (enqueue, ack, nack) at most; other routes take what their one payload may
    # be (see api/limits.py). A body is parsed whole on the event loop: 8 MiB takes about 0.25 s.
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    # One log line per HTTP request (method, path, status, duration, request id).
    log_access: bool = False
    # One log line per job event (enqueued, leased, acked, nacked, ...). Off by default, where only the
    # warnings (dead, expired) are logged: a line costs about 10 us, several per job, a fifth of the
    # broker's CPU at thousands of jobs a second. Unset, they follow the log level: on at debug.
    log_job_events: bool | None = None
    # API key entries `sha256:<hex>:<scope>[+<scope>...]`, comma-separated, from `jobbroker keys create`;
    # and/or a file of them, one per line. No entries at all turns authentication off.
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    # OpenTelemetry's own variable (no JOBBROKER_ prefix): the broker's spans go to this OTLP/HTTP
    # endpoint; unset, OpenTelemetry is not even imported. Needs jobbroker[otel]; see docs/tracing.md.
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("otel_exporter_otlp_endpoint"), pattern=r"^https?://"
    )

    lease: LeaseSettings = LeaseSettings()
    jobs: JobDefaults = JobDefaults()
    db: DbSettings = DbSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    push: PushSettings = PushSettings()
    metrics: MetricsSettings = MetricsSettings()
    server: ServerSettings = ServerSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme.split("+")[0].lower()
            if scheme not in ("postgres", "postgresql"):
                # Only the scheme: the rest of the URL may hold a password.
                given = f", not {scheme}://" if scheme else ""
                raise ValueError(f"a postgresql:// URL is expected{given}")
        return value

    def serve_workers(self) -> int:
        """The process count `serve` starts: as configured, or one per CPU this process may use (its
        CPU affinity, capped by a container's CPU limit), at most 64."""
        if self.workers != "auto":
            return self.workers
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(64, cpus, _cgroup_cpu_limit() or cpus))

    def job_events_logged(self) -> bool:
        return self.log_job_events if self.log_job_events is not None else self.log_level.lower() == "debug"

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.jobs.backoff_max_s < self.jobs.backoff_initial_s:
            raise ValueError("jobs.backoff_max_s must be >= jobs.backoff_initial_s")
        if self.db.pool_max_size < self.db.pool_min_size:
            raise ValueError("db.pool_max_size must be >= db.pool_min_size")
        return self


# Settings whose values are never repeated back (in an error message or elsewhere).
SECRET_FIELDS = frozenset({"database_url", "api_keys"})


def describe_error(error: Mapping[str, Any]) -> str:
    """One setting's validation error as `JOBBROKER_<NAME>: <what is wrong>`, for a one-line refusal."""
    loc = [str(part) for part in error.get("loc", ())]
    name = "JOBBROKER_" + "__".join(loc).upper() if loc else "the settings"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    given = error.get("input")
    if loc and loc[0] not in SECRET_FIELDS and isinstance(given, str | int | float) and len(str(given)) <= 100:
        message += f" (got {given!r})"
    return f"{name}: {message}"
