"""Schemas of failure forensics: attempts, DLQ groups, redrives and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobbroker.api.schemas import QUEUE_PATTERN, DeadSelectionRequest, OptionalNumber

Outcome = Literal["succeeded", "failed", "lease_expired", "released", "cancelled", "max_runtime_exceeded"]


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str | None
    lease_id: str | None
    leased_at: datetime | None
    ended_at: datetime | None = Field(description="Null while the attempt runs.")
    heartbeats: int
    outcome: Outcome | None = Field(description="Null while the attempt runs.")
    error: dict[str, Any] | None
    fingerprint: str | None
    http_status: int | None = Field(description="A push delivery's HTTP answer.")
    duration_seconds: float | None


class AttemptList(BaseModel):
    items: list[AttemptOut]


class DeadGroupOut(BaseModel):
    fingerprint: str | None
    error_type: str | None
    sample_message: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    queues: list[str]
    types: list[str]


class DeadGroupList(BaseModel):
    items: list[DeadGroupOut]


class RedriveRequest(DeadSelectionRequest):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "fingerprint": "5516c71596825a45",
                    "target_queue": "emails-retry",
                    "payload_patch": {"smtp_host": "mx2.example.com", "debug": None},
                    "rate_per_second": 50,
                }
            ]
        },
    )

    limit: int = Field(100_000, ge=1, le=1_000_000)
    target_queue: str | None = Field(None, pattern=QUEUE_PATTERN, description="Replay into this queue instead.")
    payload_patch: Any = Field(None, description="An RFC 7396 JSON merge patch applied to each payload.")
    rate_per_second: OptionalNumber = Field(None, gt=0, le=100_000, description="Replays per second at most.")


class RedriveOut(BaseModel):
    id: str
    state: Literal["running", "done", "cancelled", "failed"]
    total: int = Field(description="Dead jobs chosen when the redrive was created.")
    done: int = Field(description="Jobs handled so far.")
    replayed: int = Field(description="Jobs replayed so far (a chosen job no longer dead is skipped).")
    filter: dict[str, Any]
    target_queue: str | None
    payload_patch: Any
    rate_per_second: float | None
    error: str | None
    actor: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class AuditEventOut(BaseModel):
    id: str
    at: datetime
    actor: str = Field(description="The API key's public id, or `anonymous` when authentication is off.")
    action: str = Field(examples=["dlq.replay"])
    target: str | None
    filter: dict[str, Any] | None
    count: int | None
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
