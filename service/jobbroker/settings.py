"""Settings: the only place environment variables are read."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class LeaseSettings(BaseModel):
    default_visibility_timeout_s: int = Field(30, ge=1, le=43_200)
    max_wait_s: float = Field(30, ge=0, le=300)
    reaper_interval_s: float = Field(0.5, gt=0, le=60)
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


class DbSettings(BaseModel):
    pool_min_size: int = Field(2, ge=0, le=100)
    pool_max_size: int = Field(20, ge=1, le=500)
    # PgBouncer in transaction mode cannot keep prepared statements: set 0 there.
    statement_cache_size: int = Field(256, ge=0, le=10_000)
    command_timeout_s: float = Field(30, gt=0, le=600)
    migrate_on_start: bool = True


class MaintenanceSettings(BaseModel):
    cleaner_interval_s: float = Field(60, gt=0, le=86_400)
    cleaner_batch: int = Field(5000, ge=1, le=100_000)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBBROKER_", env_nested_delimiter="__", extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    data_dir: Path = Path(".jobbroker")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65_535)
    workers: int = Field(1, ge=1, le=64)
    log_level: str = "info"
    log_format: str = Field("json", pattern="^(json|text)$")
    max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024)

    lease: LeaseSettings = LeaseSettings()
    jobs: JobDefaults = JobDefaults()
    db: DbSettings = DbSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.jobs.backoff_max_s < self.jobs.backoff_initial_s:
            raise ValueError("jobs.backoff_max_s must be >= jobs.backoff_initial_s")
        if self.db.pool_max_size < self.db.pool_min_size:
            raise ValueError("db.pool_max_size must be >= db.pool_min_size")
        return self
