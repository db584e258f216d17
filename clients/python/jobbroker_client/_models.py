"""Typed answers of the v1 API; unknown fields from a newer broker are kept, not rejected."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class JobState(StrEnum):
    PENDING = "pending"  # visible once run_at <= now
    ACTIVE = "active"  # held by one lease until lease_expires_at
    RETRYING = "retrying"  # failed an attempt; visible again once run_at <= now
    SUCCEEDED = "succeeded"  # acked; terminal
    DEAD = "dead"  # in the DLQ; leaves only via replay
    CANCELLED = "cancelled"  # terminal unless replayed


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Backoff(_Model):
    """Retry delay policy: initial_seconds * multiplier**(attempt-1), capped, with jitter."""

    initial_seconds: float | None = None
    max_seconds: float | None = None
    multiplier: float | None = None
    jitter: float | bool | None = None


class ErrorInfo(_Model):
    """What a failed attempt reported."""

    message: str
    type: str | None = None
    details: Any = None


class AttemptError(_Model):
    """One entry of a job's error history."""

    attempt: int | None = None
    at: datetime | None = None
    error: ErrorInfo
    worker_id: str | None = None
    fingerprint: str | None = None


class Job(_Model):
    """A job as the broker stores it."""

    id: str
    queue: str
    type: str
    payload: Any = None
    state: JobState
    priority: int = 0
    attempts: int = 0
    max_attempts: int | None = None
    backoff: Backoff | None = None
    timeout_seconds: float | None = None
    run_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    tags: list[str] = Field(default_factory=list)
    flow_key: str | None = None
    heartbeat_timeout_seconds: int | None = None
    max_runtime_seconds: int | None = None
    result: Any = None
    errors: list[AttemptError] = Field(default_factory=list)
    cancel_requested: bool = False
    progress: Any = None
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    # The W3C trace context it was enqueued under: {"traceparent": ..., "tracestate": ...}.
    trace_context: dict[str, str] | None = None
    replays: int = 0
    last_fingerprint: str | None = None


class EnqueuedJob(Job):
    """The answer to an enqueue: the job, and whether its idempotency key already existed."""

    duplicate: bool = False


class LeasedJob(Job):
    """A job handed out by a lease; ack, nack and heartbeat must quote its `lease_id`."""

    lease_id: str
    attempt: int
    lease_expires_at: datetime | None = None


class Heartbeat(_Model):
    """The answer to a heartbeat: the new lease expiry, and whether cancellation was requested."""

    id: str
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False


class BatchItemResult(_Model):
    """The outcome of one item of a batch ack or nack."""

    id: str
    ok: bool
    code: str | None = None


T = TypeVar("T")


class Page(_Model, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next one."""

    items: list[T]
    next_cursor: str | None = None


class QueueCounts(_Model):
    pending: int = 0
    active: int = 0
    retrying: int = 0
    succeeded: int = 0
    dead: int = 0
    cancelled: int = 0


class QueueStats(_Model):
    """Counts and settings of one queue."""

    name: str
    paused: bool = False
    counts: QueueCounts = Field(default_factory=QueueCounts)
    oldest_pending_age_seconds: float | None = None
    active_leases: int = 0
    dlq_size: int = 0
    max_concurrency: int | None = None
    rate_limit: Any = None
    default_max_attempts: int | None = None
    default_backoff: Backoff | None = None
    retention_seconds: float | None = None
    dead_retention_seconds: float | None = None


class JobSpec(_Model):
    """One job to enqueue (the items of `enqueue_many`); unset fields take the broker's defaults."""

    type: str
    payload: Any = Field(default_factory=dict)
    priority: int | None = None
    delay_seconds: float | None = None
    run_at: datetime | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    timeout_seconds: float | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    tags: list[str] | None = None
    flow_key: str | None = None
    heartbeat_timeout_seconds: int | None = None
    max_runtime_seconds: int | None = None

    def to_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class AckItem(_Model):
    """One item of `ack_many`."""

    id: str
    lease_id: str
    result: Any = None


class NackItem(_Model):
    """One item of `nack_many`."""

    id: str
    lease_id: str
    error: ErrorInfo
    retryable: bool = True
    retry_in_seconds: float | None = None
    pause_key: bool = False


class Attempt(_Model):
    """One attempt of a job; the running one has no `ended_at` or `outcome`."""

    attempt: int
    worker_id: str | None = None
    lease_id: str | None = None
    leased_at: datetime | None = None
    ended_at: datetime | None = None
    heartbeats: int = 0
    outcome: str | None = None
    error: ErrorInfo | None = None
    fingerprint: str | None = None
    http_status: int | None = None
    duration_seconds: float | None = None


class DeadGroup(_Model):
    """Dead jobs sharing the fingerprint of their last failure."""

    fingerprint: str | None = None
    error_type: str | None = None
    sample_message: str | None = None
    count: int
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    queues: list[str] = Field(default_factory=list)
    types: list[str] = Field(default_factory=list)


class RedriveStatus(_Model):
    """A redrive's progress."""

    id: str
    state: str
    total: int
    done: int
    replayed: int = 0
    filter: dict[str, Any] = Field(default_factory=dict)
    target_queue: str | None = None
    payload_patch: Any = None
    rate_per_second: float | None = None
    error: str | None = None
    actor: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"


class AuditEvent(_Model):
    """One admin action."""

    id: str
    at: datetime
    actor: str
    action: str
    target: str | None = None
    filter: dict[str, Any] | None = None
    count: int | None = None
    request_id: str | None = None
