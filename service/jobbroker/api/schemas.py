"""Request and answer schemas: validation for requests, documentation for answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic import Strict as StrictType

from jobbroker.core import jsontext
from jobbroker.core.models import Backoff, DeadSelection, NewJob, job_id_or_none
from jobbroker.core.states import JobState
from jobbroker.core.trace import TRACEPARENT_PATTERN, TRACESTATE_MAX, valid_traceparent

# Patterns are anchored as JSON Schema (ECMA 262) and the validator (Rust regex) read them: `$` is
# the end of the text, so no trailing newline passes. Python code matches them with `fullmatch`.
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
# Names: no whitespace, no control characters.
NAME_PATTERN = r"^[^\s\x00-\x1f\x7f]+$"
# Free text that Postgres stores: no U+0000 (a body cannot carry one: core/jsontext.py refuses it).
TEXT_PATTERN = r"^[^\x00]*$"
# Header and label text: no control characters.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_DELAY_S = 366 * 86_400
MAX_VISIBILITY_S = 43_200
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_RUNTIME_S = 7 * 86_400


def _text_only(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("give an RFC 3339 date-time string")
    return value


def _aware_in_range(value: datetime) -> datetime:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must lie between 1970-01-01 and 9999-12-31 (UTC)")
    return value


def _float(value: Any) -> Any:
    # A body decodes its floats exactly (core/jsontext.py); a number field takes their value.
    return float(value) if type(value) is jsontext.LosslessFloat else value


# Bodies validate strictly (no "5" or true for a number, no "false" for a boolean); a date-time is
# the one field given as text, and only as text.
AwareDatetime = Annotated[datetime, StrictType(False), BeforeValidator(_text_only), AfterValidator(_aware_in_range)]
Number = Annotated[float, BeforeValidator(_float)]
# The optional form validates the union, so that the field's bounds stay in its JSON schema.
OptionalNumber = Annotated[float | None, BeforeValidator(_float)]
JobType = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN, examples=["send-email"])]
WorkerId = Annotated[str, Field(min_length=1, max_length=200, pattern=LINE_PATTERN, examples=["worker-1"])]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=LINE_PATTERN)]
JobId = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[0-9]+$", examples=["1042"])]
FlowKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=LINE_PATTERN,
        description="The tenant, customer or endpoint the job belongs to: per-key limits and fairness apply.",
        examples=["customer-42"],
    ),
]
LeaseId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
        examples=["7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11"],
    ),
]
Fingerprint = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", examples=["5516c71596825a45"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BackoffIn(Strict):
    initial_seconds: OptionalNumber = Field(None, gt=0, le=86_400, description="Delay before the first retry.")
    max_seconds: OptionalNumber = Field(None, gt=0, le=7 * 86_400, description="Cap on any one delay.")
    multiplier: OptionalNumber = Field(None, ge=1, le=10, description="Growth factor per attempt.")
    jitter: OptionalNumber = Field(None, ge=0, le=1, description="Fraction of the delay randomly taken off (0–1).")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffIn:
        if self.initial_seconds and self.max_seconds and self.max_seconds < self.initial_seconds:
            raise ValueError("max_seconds must be >= initial_seconds")
        return self

    def to_core(self) -> Backoff:
        return Backoff(self.initial_seconds, self.max_seconds, self.multiplier, self.jitter)


class TraceContextIn(Strict):
    """W3C trace context; overrides the request's `traceparent` and `tracestate` headers for this job."""

    traceparent: str = Field(
        max_length=256,
        pattern=TRACEPARENT_PATTERN,
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    tracestate: str | None = Field(None, min_length=1, max_length=TRACESTATE_MAX, examples=["vendor=opaque"])

    @model_validator(mode="after")
    def _continuable(self) -> TraceContextIn:
        if not valid_traceparent(self.traceparent):
            raise ValueError("traceparent is not a W3C traceparent a trace can continue")
        return self

    def to_core(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class EnqueueRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "send-email",
                    "payload": {"to": "ada@example.com", "template": "welcome"},
                    "priority": 0,
                    "max_attempts": 5,
                    "idempotency_key": "welcome-ada",
                    "tags": ["onboarding"],
                }
            ]
        },
    )

    type: JobType
    payload: Any = Field(default_factory=dict, description="Any JSON value, up to the payload size limit.")
    priority: int = Field(0, ge=-32_768, le=32_767, description="Lower is leased first.")
    delay_seconds: OptionalNumber = Field(None, ge=0, le=MAX_DELAY_S, description="Run no sooner than this.")
    run_at: AwareDatetime | None = Field(None, description="Run no sooner than this instant (RFC 3339).")
    max_attempts: int | None = Field(None, ge=1, le=1000, description="Attempts before the job is dead.")
    backoff: BackoffIn | None = None
    timeout_seconds: int | None = Field(
        None, ge=1, le=MAX_VISIBILITY_S, description="Default visibility timeout of this job's leases."
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="A repeat in the same queue answers the existing job (200, `duplicate`); one with a "
        "different type or payload while that job exists is 409 `idempotency_conflict`.",
    )
    correlation_id: str | None = Field(None, min_length=1, max_length=255, pattern=LINE_PATTERN)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    flow_key: FlowKey | None = None
    visibility_timeout_seconds: int | None = Field(
        None, ge=1, le=MAX_VISIBILITY_S, description="The same as timeout_seconds: the length of a lease."
    )
    heartbeat_timeout_seconds: int | None = Field(
        None, ge=1, le=MAX_VISIBILITY_S, description="A lease with no heartbeat for this long expires early."
    )
    max_runtime_seconds: int | None = Field(
        None, ge=1, le=MAX_RUNTIME_S, description="An attempt running longer fails (max_runtime_exceeded)."
    )
    trace_context: TraceContextIn | None = None

    @model_validator(mode="after")
    def _one_schedule(self) -> EnqueueRequest:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        if self.timeout_seconds is not None and self.visibility_timeout_seconds is not None:
            raise ValueError("give timeout_seconds or visibility_timeout_seconds, not both")
        return self

    def to_core(self, correlation_id: str | None = None, trace_context: dict[str, str] | None = None) -> NewJob:
        return NewJob(
            type=self.type,
            payload=self.payload,
            priority=self.priority,
            run_at=self.run_at,
            delay_s=self.delay_seconds,
            max_attempts=self.max_attempts,
            backoff=self.backoff.to_core() if self.backoff else Backoff(),
            timeout_s=self.timeout_seconds or self.visibility_timeout_seconds,
            idempotency_key=self.idempotency_key,
            correlation_id=self.correlation_id or correlation_id,
            tags=tuple(self.tags),
            flow_key=self.flow_key,
            heartbeat_timeout_s=self.heartbeat_timeout_seconds,
            max_runtime_s=self.max_runtime_seconds,
            trace_context=self.trace_context.to_core() if self.trace_context else trace_context,
        )


class Batch(Strict):
    """A batch body: an object holding the list, or the bare list itself."""

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {next(iter(cls.model_fields)): data}
        return data


class EnqueueBatchRequest(Batch):
    jobs: list[EnqueueRequest] = Field(min_length=1, max_length=1000, validation_alias=AliasChoices("jobs", "items"))


class LeaseRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"worker_id": "worker-1", "max_jobs": 10, "visibility_timeout_seconds": 30, "wait_seconds": 20}
            ]
        },
    )

    worker_id: WorkerId
    max_jobs: int = Field(1, ge=1, le=1000)
    visibility_timeout_seconds: int | None = Field(
        None, ge=1, le=MAX_VISIBILITY_S, description="Defaults to each job's timeout_seconds."
    )
    wait_seconds: Number = Field(0, ge=0, le=30, description="Long-poll: wait this long for a job.")
    types: list[JobType] | None = Field(None, min_length=1, max_length=100, description="Only these types.")


class HeartbeatRequest(Strict):
    lease_id: LeaseId
    progress: Any = None
    visibility_timeout_seconds: int | None = Field(None, ge=1, le=MAX_VISIBILITY_S)


class AckRequest(Strict):
    lease_id: LeaseId
    result: Any = None


class ErrorIn(Strict):
    """What went wrong; a bare string is taken as the message."""

    message: str = Field("unspecified error", max_length=10_000)
    type: str | None = Field(None, max_length=200, pattern=LINE_PATTERN)
    details: Any = None

    @model_validator(mode="before")
    @classmethod
    def _bare_message(cls, data: Any) -> Any:
        return {"message": data} if isinstance(data, str) else data


class NackRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "lease_id": "7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11",
                    "error": {"type": "SMTPError", "message": "mail server refused the connection"},
                    "retryable": True,
                }
            ]
        },
    )

    lease_id: LeaseId
    error: ErrorIn = Field(default_factory=ErrorIn)
    retryable: bool = True
    retry_in_seconds: OptionalNumber = Field(None, ge=0, le=MAX_DELAY_S)
    pause_key: bool = Field(
        False, description="Backpressure: also pause the job's flow key (not the queue) for retry_in_seconds."
    )

    @model_validator(mode="after")
    def _pause_needs_time(self) -> NackRequest:
        if self.pause_key and not self.retry_in_seconds:
            raise ValueError("pause_key needs retry_in_seconds (how long to pause the key)")
        return self


class ReleaseRequest(Strict):
    lease_id: LeaseId
    delay_seconds: OptionalNumber = Field(None, ge=0, le=MAX_DELAY_S, description="Lease again no sooner than this.")


class AckItem(AckRequest):
    id: JobId


class NackItem(NackRequest):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "1042",
                    "lease_id": "7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11",
                    "error": {"type": "SMTPError", "message": "mail server refused the connection"},
                    "retryable": True,
                }
            ]
        }
    )

    id: JobId


class AckBatchRequest(Batch):
    items: list[AckItem] = Field(min_length=1, max_length=1000, validation_alias=AliasChoices("items", "acks"))


class NackBatchRequest(Batch):
    items: list[NackItem] = Field(min_length=1, max_length=1000, validation_alias=AliasChoices("items", "nacks"))


class DeadSelectionRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"queue": "emails", "error": "refused", "limit": 100},
                {"fingerprint": "5516c71596825a45", "dry_run": True},
                {"ids": ["1042", "1043"]},
            ]
        },
    )

    ids: list[JobId] | None = Field(None, min_length=1, max_length=1000)
    queue: str | None = Field(None, pattern=QUEUE_PATTERN)
    type: JobType | None = None
    error: str | None = Field(
        None, min_length=1, max_length=500, description="Substring of a recorded error's message or type."
    )
    since: AwareDatetime | None = Field(None, description="Died at or after this instant.")
    until: AwareDatetime | None = Field(None, description="Died before this instant.")
    fingerprint: Fingerprint | None = Field(None, description="The fingerprint of the job's last failure.")
    payload_contains: dict[str, Any] | None = Field(
        None, description="A JSON object the payload contains (`@>`: nested objects match by subset)."
    )
    limit: int = Field(1000, ge=1, le=100_000)
    dry_run: bool = Field(False, description="Only count the jobs it would move; change nothing.")
    all: bool = Field(False, description="Required to act on every dead job when no ids or filters are given.")

    def to_core(self) -> DeadSelection:
        # An id no job can have matches nothing.
        ids = None if self.ids is None else tuple(i for i in map(job_id_or_none, self.ids) if i is not None)
        return DeadSelection(
            ids,
            self.queue,
            self.type,
            self.error,
            self.since,
            self.until,
            self.limit,
            self.fingerprint,
            self.payload_contains,
        )


class RateLimitIn(Strict):
    max: int = Field(ge=1, le=1_000_000, description="Leases at most this many...")
    per_seconds: Number = Field(1.0, gt=0, le=86_400, description="...per this many seconds, evenly spaced.")


class FlowIn(Strict):
    """Per-key defaults of a queue. Only the fields given change; `null` lifts a limit."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "max_concurrency_per_key": 2,
                    "rate_limit_per_key": {"max": 10, "per_seconds": 1},
                    "fairness": "round_robin",
                }
            ]
        },
    )

    max_concurrency_per_key: int | None = Field(None, ge=1, le=1_000_000, description="Active jobs per key at most.")
    rate_limit_per_key: RateLimitIn | None = None
    fairness: Literal["round_robin", "fifo"] | None = Field(
        None, description="round_robin (default): ready keys take turns; fifo: global order, limits still hold."
    )


class QueueKeyPatch(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"max_concurrency": 1, "rate_limit": {"max": 5, "per_seconds": 1}}, {"paused": True}]
        },
    )

    max_concurrency: int | None = Field(None, ge=1, le=1_000_000, description="Overrides the queue's default.")
    rate_limit: RateLimitIn | None = Field(None, description="Overrides the queue's default.")
    paused: bool | None = Field(None, description="Hold the key's jobs until resumed.")
    paused_until: AwareDatetime | None = Field(None, description="Hold the key's jobs until this instant.")


class QueuePatch(Strict):
    paused: bool | None = None
    max_concurrency: int | None = Field(None, ge=1, le=1_000_000, description="Active jobs at most; null lifts it.")
    rate_limit: OptionalNumber = Field(None, gt=0, le=1_000_000, description="Leases per second; null lifts it.")
    default_max_attempts: int | None = Field(None, ge=1, le=1000)
    default_backoff: BackoffIn | None = None
    retention_seconds: int | None = Field(
        None, ge=60, le=10 * 366 * 86_400, description="Keep succeeded and cancelled jobs this long."
    )
    dead_retention_seconds: int | None = Field(
        None, ge=60, le=10 * 366 * 86_400, description="Keep dead jobs this long."
    )
    default_visibility_timeout_seconds: int | None = Field(None, ge=1, le=MAX_VISIBILITY_S)
    default_heartbeat_timeout_seconds: int | None = Field(None, ge=1, le=MAX_VISIBILITY_S)
    default_max_runtime_seconds: int | None = Field(None, ge=1, le=MAX_RUNTIME_S)
    flow: FlowIn | None = Field(None, description="Per-key limits and fairness; `null` resets them.")


# ---- answers (documentation; routes answer plain JSON built by the store)


class ErrorEntry(BaseModel):
    attempt: int
    at: datetime
    error: dict[str, Any]
    worker_id: str | None = None
    fingerprint: str | None = None


class BackoffOut(BaseModel):
    initial_seconds: float
    max_seconds: float
    multiplier: float
    jitter: float


class TraceContextOut(BaseModel):
    traceparent: str
    tracestate: str | None = None


class JobOut(BaseModel):
    id: str
    queue: str
    type: str
    payload: Any
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    backoff: BackoffOut
    timeout_seconds: int
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    correlation_id: str | None
    idempotency_key: str | None
    tags: list[str]
    flow_key: str | None = None
    heartbeat_timeout_seconds: int | None = None
    max_runtime_seconds: int | None = None
    result: Any
    errors: list[ErrorEntry]
    cancel_requested: bool
    progress: Any
    worker_id: str | None
    lease_expires_at: datetime | None
    trace_context: TraceContextOut | None = Field(
        None, description="The W3C trace context the job was enqueued under (`traceparent`, `tracestate`)."
    )
    replays: int = Field(0, description="Times the job was replayed from the DLQ.")
    last_fingerprint: str | None = Field(None, description="The fingerprint of its last failure.")


class EnqueueOut(JobOut):
    duplicate: bool


class EnqueueBatchOut(BaseModel):
    jobs: list[EnqueueOut]


class LeasedJobOut(JobOut):
    lease_id: str
    attempt: int


class LeaseOut(BaseModel):
    jobs: list[LeasedJobOut]


class HeartbeatOut(BaseModel):
    id: str
    lease_expires_at: datetime
    cancel_requested: bool


class SettleResult(BaseModel):
    id: str
    ok: bool
    code: str | None = None


class SettleBatchOut(BaseModel):
    results: list[SettleResult]


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class CountOut(BaseModel):
    count: int


class RateLimitOut(BaseModel):
    max: int
    per_seconds: float


class FlowOut(BaseModel):
    max_concurrency_per_key: int | None
    rate_limit_per_key: RateLimitOut | None
    fairness: Literal["round_robin", "fifo"]


class QueueOut(BaseModel):
    name: str
    paused: bool
    counts: dict[JobState, int]
    oldest_pending_age_seconds: float
    active_leases: int
    dlq_size: int
    counts_estimated: bool = Field(
        False,
        description="True when the finished counts (succeeded, cancelled) are the planner's estimates: "
        "counting them exactly would read most of a big job table.",
    )
    max_concurrency: int | None
    rate_limit: float | None
    default_max_attempts: int | None
    default_backoff: dict[str, Any] | None
    retention_seconds: int | None
    dead_retention_seconds: int | None
    default_visibility_timeout_seconds: int | None = None
    default_heartbeat_timeout_seconds: int | None = None
    default_max_runtime_seconds: int | None = None
    flow: FlowOut


class QueueList(BaseModel):
    items: list[QueueOut]


class QueueKeyOut(BaseModel):
    key: str
    ready: int = Field(description="Jobs of the key waiting and due.")
    active: int = Field(description="Jobs of the key running now.")
    paused: bool
    paused_until: datetime | None
    max_concurrency: int | None = Field(description="The key's own limit; null: the queue's max_concurrency_per_key.")
    rate_limit: RateLimitOut | None = Field(description="The key's own rate; null: the queue's rate_limit_per_key.")


class QueueKeyPage(BaseModel):
    items: list[QueueKeyOut]
    next_cursor: str | None


class ProblemItem(BaseModel):
    """One invalid value: where it is (`["body", "payload", "x"]`) and what is wrong with it."""

    loc: list[str | int]
    msg: str
    type: str


class WhoAmI(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"authentication": True, "key_id": "3f9a0c12be47", "scopes": ["admin"]}]}
    )

    authentication: bool = Field(description="False when the broker runs without API keys (development mode).")
    key_id: str | None = Field(description="The key's public id: the start of its hash, never the key.")
    scopes: list[str] = Field(description="`admin` implies every other scope.")


class ThroughputBucket(BaseModel):
    start: datetime = Field(description="The minute's first instant.")
    succeeded: int = Field(description="Jobs that succeeded in this minute.")
    failed: int = Field(description="Jobs that died (moved to the DLQ) in this minute.")


class QueueStatsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "queue": "emails",
                    "bucket_seconds": 60,
                    "buckets": [{"start": "2026-12-01T21:00:00Z", "succeeded": 312, "failed": 2}],
                }
            ]
        }
    )

    queue: str
    bucket_seconds: int = Field(description="Each bucket's length: one minute.")
    buckets: list[ThroughputBucket] = Field(description="Oldest first, every minute present, the current one last.")


class Problem(BaseModel):
    """An RFC 9457 problem: every error answer has this shape, with a stable machine `code`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:jobbroker:problem:lease_lost",
                    "title": "Lease lost",
                    "status": 409,
                    "detail": "job 1042 is not held by lease 7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11 (state active)",
                    "code": "lease_lost",
                    "instance": "/v1/jobs/1042/ack",
                }
            ]
        }
    )

    type: str = Field(description="A URN naming the problem type: `urn:jobbroker:problem:<code>`.")
    title: str
    status: int
    detail: str
    code: str = Field(examples=["lease_lost"], description="Stable machine code to branch on.")
    instance: str | None = Field(None, description="The request path.")
    errors: list[ProblemItem] | None = Field(None, description="For validation errors: each invalid value.")
    job_id: str | None = Field(None, description="For `idempotency_conflict`: the job that holds the key.")
    state: str | None = Field(None, description="For `invalid_state`: the job's state.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool | None = None
    schema_current: bool | None = None
