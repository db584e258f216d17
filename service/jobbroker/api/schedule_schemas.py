"""Schedules on the wire: what a create or change may say, and what the API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobbroker.api.schemas import MAX_VISIBILITY_S, QUEUE_PATTERN, JobType, Strict
from jobbroker.core.errors import InvalidInput
from jobbroker.core.schedule import next_fire, zone

CRON = Field(min_length=1, max_length=200, description="Five-field cron expression, e.g. `*/5 * * * *`.")
TIMEZONE = Field(max_length=64, description="IANA time zone the expression is read in.")


def _valid_cron(value: str) -> str:
    try:
        next_fire(value, "UTC", datetime.now().astimezone())
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None  # a validation error naming the field
    return value


def _valid_zone(value: str) -> str:
    try:
        zone(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None
    return value


class ScheduleFields(Strict):
    @field_validator("cron", check_fields=False)
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else _valid_cron(value)

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else _valid_zone(value)


class ScheduleCreate(ScheduleFields):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-report",
                    "cron": "0 2 * * *",
                    "timezone": "Europe/Berlin",
                    "queue": "reports",
                    "type": "build-report",
                    "payload": {"kind": "daily"},
                }
            ]
        },
    )

    name: str = Field(pattern=QUEUE_PATTERN, description="Unique name of the schedule.")
    cron: str = CRON
    timezone: str = Field("UTC", max_length=64, description="IANA time zone the expression is read in.")
    queue: str = Field(pattern=QUEUE_PATTERN)
    type: JobType
    payload: Any = Field(
        default_factory=dict,
        description="The JSON value each fire enqueues as the job's payload (`null` is a value); absent: `{}`.",
    )
    priority: int = Field(0, ge=-32_768, le=32_767)
    max_attempts: int | None = Field(None, ge=1, le=1000)
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_VISIBILITY_S)
    paused: bool = False


class SchedulePatch(ScheduleFields):
    cron: str | None = Field(None, min_length=1, max_length=200)
    timezone: str | None = Field(None, max_length=64)
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    type: JobType | None = None
    payload: Any = None
    priority: int | None = Field(None, ge=-32_768, le=32_767)
    max_attempts: int | None = Field(None, ge=1, le=1000)
    timeout_seconds: int | None = Field(None, ge=1, le=MAX_VISIBILITY_S)
    paused: bool | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given; null only clears the optional ones (max_attempts, timeout_seconds)."""
        clearable = {"max_attempts", "timeout_seconds", "payload"}
        return {
            k: v for k, v in self.model_dump(include=self.model_fields_set).items() if v is not None or k in clearable
        }


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    queue: str
    type: str
    payload: Any
    priority: int
    max_attempts: int | None
    timeout_seconds: int | None
    paused: bool
    next_run_at: datetime
    last_run_at: datetime | None
    last_job_id: str | None
    created_at: datetime
    updated_at: datetime


class ScheduleList(BaseModel):
    items: list[ScheduleOut]
