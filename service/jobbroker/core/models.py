"""Value objects passed between the API and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jobbroker.core.errors import JobNotFound

MAX_JOB_ID = 2**63 - 1


def parse_job_id(raw: str) -> int:
    """Job ids are positive 64-bit integers on the wire as strings; anything else names no job."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_JOB_ID:
        raise JobNotFound(f"no job with id {raw!r}")
    return int(raw)


def job_id_or_none(raw: str) -> int | None:
    """The job id `raw` names, or None when no job can have it (batch items and filters then match nothing)."""
    try:
        return parse_job_id(raw)
    except JobNotFound:
        return None


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float | None = None
    max_s: float | None = None
    multiplier: float | None = None
    jitter: float | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    type: str
    payload: Any
    priority: int = 0
    run_at: datetime | None = None
    delay_s: float | None = None
    max_attempts: int | None = None
    backoff: Backoff = field(default_factory=Backoff)
    timeout_s: int | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    tags: tuple[str, ...] = ()
    flow_key: str | None = None
    heartbeat_timeout_s: int | None = None
    max_runtime_s: int | None = None
    # W3C trace context ({"traceparent", "tracestate"?}), see core/trace.py.
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Settle:
    """One ack (error is None) or nack in a batch."""

    id: int
    lease_id: str
    result: Any = None
    error: dict[str, Any] | None = None
    retryable: bool = True
    retry_in_s: float | None = None
    pause_key: bool = False


@dataclass(frozen=True, slots=True)
class JobFilter:
    queue: str | None = None
    state: str | None = None
    type: str | None = None
    correlation_id: str | None = None
    tag: str | None = None
    error: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    fingerprint: str | None = None
    payload_contains: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeadSelection:
    ids: tuple[int, ...] | None
    queue: str | None
    type: str | None
    error: str | None
    since: datetime | None
    until: datetime | None
    limit: int
    fingerprint: str | None = None
    payload_contains: dict[str, Any] | None = None

    @property
    def chooses_nothing(self) -> bool:
        """No ids and no filter: the selection is every dead job."""
        return self.ids is None and not self.filter()

    def filter(self) -> dict[str, Any]:
        """The filters given, as recorded in a redrive or an audit event."""
        chosen = {
            "queue": self.queue,
            "type": self.type,
            "error": self.error,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "fingerprint": self.fingerprint,
            "payload_contains": self.payload_contains,
        }
        return {k: v for k, v in chosen.items() if v is not None}
