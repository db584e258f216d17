"""What a handler receives (`JobContext`), and how a handler's outcome becomes an ack or a nack."""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_jsonable_python

from ._exceptions import JobCancelled, PermanentError, Retry
from ._models import LeasedJob

MAX_MESSAGE_CHARS = 2_000
MAX_TRACEBACK_CHARS = 16_000


class JobContext:
    """A leased job as a handler sees it: the job's fields, cancellation, progress and lease state.

    Attribute reads fall through to the leased job, so `job.payload`, `job.tags`, `job.max_attempts`
    and every other field of the broker's job work as well as the ones listed here.
    """

    def __init__(self, job: LeasedJob, worker_id: str) -> None:
        self.job = job
        self.worker_id = worker_id
        self.progress: Any = None
        self.lease_lost = False
        self.cancel_event = threading.Event()

    def __getattr__(self, name: str) -> Any:
        if name == "job":
            raise AttributeError(name)
        return getattr(self.job, name)

    def __repr__(self) -> str:
        return f"<JobContext id={self.id!r} type={self.type!r} attempt={self.attempt}>"

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def type(self) -> str:
        return self.job.type

    @property
    def payload(self) -> Any:
        return self.job.payload

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def correlation_id(self) -> str | None:
        return self.job.correlation_id

    @property
    def lease_id(self) -> str:
        return self.job.lease_id

    @property
    def is_last_attempt(self) -> bool:
        return self.job.max_attempts is not None and self.attempt >= self.job.max_attempts

    @property
    def cancel_requested(self) -> bool:
        """True once a heartbeat reported that someone cancelled this job (or its lease was lost)."""
        return self.cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `JobCancelled` (a `PermanentError`) if the job should stop now."""
        if self.cancel_event.is_set():
            reason = "its lease was lost" if self.lease_lost else "cancellation was requested"
            raise JobCancelled(f"job {self.id} stopped: {reason}")

    def set_progress(self, progress: Any) -> None:
        """Report progress (any JSON); the next heartbeat carries it to the broker."""
        self.progress = progress


@dataclass(frozen=True)
class Outcome:
    """How a handler run ends: an ack with `result`, or a nack with `error`."""

    ack: bool
    result: Any = None
    error: dict[str, Any] | None = None
    retryable: bool = True
    retry_in_seconds: float | None = None
    released: bool = False
    pause_key: bool = False

    def settle_item(self, ctx: JobContext) -> dict[str, Any]:
        if self.ack:
            return {"id": ctx.id, "lease_id": ctx.lease_id, "result": self.result}
        item: dict[str, Any] = {
            "id": ctx.id,
            "lease_id": ctx.lease_id,
            "error": self.error,
            "retryable": self.retryable,
        }
        if self.retry_in_seconds is not None:
            item["retry_in_seconds"] = self.retry_in_seconds
            # The broker pauses a key only for a positive time.
            if self.pause_key and self.retry_in_seconds > 0:
                item["pause_key"] = True
        return item


def _clip(text: str, limit: int, keep_tail: bool = False) -> str:
    if len(text) <= limit:
        return text
    return "…" + text[-limit:] if keep_tail else text[:limit] + "…"


def error_info(exc: BaseException) -> dict[str, Any]:
    """The nack `error` for an exception: its type, message and traceback (in details)."""
    cls = type(exc)
    formatted = "".join(traceback.format_exception(exc))
    return {
        "message": _clip(str(exc) or cls.__name__, MAX_MESSAGE_CHARS),
        "type": cls.__name__,
        "details": {
            "exception": f"{cls.__module__}.{cls.__qualname__}",
            # The end of a long traceback is where the failure is, so keep that part.
            "traceback": _clip(formatted, MAX_TRACEBACK_CHARS, keep_tail=True),
        },
    }


def ack(result: Any) -> Outcome:
    try:
        return Outcome(ack=True, result=to_jsonable_python(result))
    except Exception as exc:
        error = error_info(exc)
        error["message"] = f"handler result is not JSON serializable: {error['message']}"
        return Outcome(ack=False, error=error, retryable=False)


def failure(exc: Exception) -> Outcome:
    """The nack for an exception a handler raised."""
    if isinstance(exc, Retry):
        return Outcome(
            ack=False, error=error_info(exc), retry_in_seconds=max(0.0, float(exc.in_seconds)), pause_key=exc.pause_key
        )
    return Outcome(ack=False, error=error_info(exc), retryable=not isinstance(exc, PermanentError))


def no_handler(ctx: JobContext, known: list[str]) -> Outcome:
    message = (
        f"no handler for job type {ctx.type!r} in worker {ctx.worker_id} "
        f"(it handles: {', '.join(sorted(known)) or 'nothing'})"
    )
    return Outcome(ack=False, error={"message": message, "type": "NoHandler"}, retryable=False)


def released(ctx: JobContext) -> Outcome:
    """Hand a job back at shutdown, attempt returned, so another worker leases it at once."""
    return Outcome(ack=False, released=True)
