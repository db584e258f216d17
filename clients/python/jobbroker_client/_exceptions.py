"""Exceptions raised by the client and understood by the worker.

JobbrokerError                 any failure talking to the broker (.status, .code, .detail)
├── TransportError             no answer: connection refused or reset, timeout
├── ValidationError            422 validation_error (400 for malformed JSON)
├── Unauthorized               401 unauthorized
├── Forbidden                  403 forbidden
├── NotFound                   404 not_found
│   └── JobNotFound            404 job_not_found
├── Conflict                   409
│   ├── LeaseLost              409 lease_lost: the lease expired or belongs to someone else
│   ├── InvalidState           409 invalid_state: e.g. cancel a finished job
│   └── QueuePaused            queue_paused
├── PayloadTooLarge            413 payload_too_large
├── ServerError                5xx
│   └── DatabaseUnavailable    503 database_unavailable
└── UnexpectedResponse         an answer that is not the documented shape

PermanentError                 raised by a handler: fail the job without retrying
Retry                          raised by a handler: retry the job in `in_seconds`
"""

from __future__ import annotations

from typing import Any

import httpx


class JobbrokerError(Exception):
    """A request to the broker failed; `status`, `code` and `detail` come from its problem+json."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        type: str | None = None,
        instance: str | None = None,
        errors: list[Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.title = title
        self.type = type
        self.instance = instance
        self.errors = errors
        self.response = response

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.code) if part is not None)
        return f"{head}: {self.detail}" if head else self.detail


class TransportError(JobbrokerError):
    """The broker could not be reached or did not answer in time."""


class ValidationError(JobbrokerError):
    """The broker rejected the request body or parameters (`errors` lists the fields)."""


class Unauthorized(JobbrokerError):
    """No API key, or an unknown one."""


class Forbidden(JobbrokerError):
    """The API key may not do this."""


class NotFound(JobbrokerError):
    """No such resource."""


class JobNotFound(NotFound):
    """No job with that id."""


class Conflict(JobbrokerError):
    """The request conflicts with the resource's current state."""


class LeaseLost(Conflict):
    """The lease expired or the job was leased again: the ack, nack or heartbeat changed nothing."""


class InvalidState(Conflict):
    """The job is in a state that does not allow this (e.g. replay a job that is not dead)."""


class QueuePaused(Conflict):
    """The queue is paused."""


class PayloadTooLarge(JobbrokerError):
    """The request body is larger than the broker accepts."""


class ServerError(JobbrokerError):
    """The broker failed to serve the request."""


class DatabaseUnavailable(ServerError):
    """The broker cannot reach its database right now."""


class UnexpectedResponse(JobbrokerError):
    """The broker answered something that is not the documented shape."""


_BY_CODE: dict[str, type[JobbrokerError]] = {
    "validation_error": ValidationError,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "job_not_found": JobNotFound,
    "lease_lost": LeaseLost,
    "invalid_state": InvalidState,
    "queue_paused": QueuePaused,
    "payload_too_large": PayloadTooLarge,
    "database_unavailable": DatabaseUnavailable,
}

_BY_STATUS: dict[int, type[JobbrokerError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationError,
    503: DatabaseUnavailable,
}


def error_from_response(response: httpx.Response) -> JobbrokerError:
    """Map an error answer (problem+json or not) to the matching exception."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else JobbrokerError
    detail = problem.get("detail") or problem.get("title") or response.text or response.reason_phrase
    return cls(
        str(detail),
        status=response.status_code,
        code=code,
        title=problem.get("title"),
        type=problem.get("type"),
        instance=problem.get("instance"),
        errors=problem.get("errors"),
        response=response,
    )


class PermanentError(Exception):
    """Raise from a handler to fail the job at once: it goes to the DLQ without further attempts."""


class Retry(Exception):
    """Raise from a handler to retry the job after `in_seconds` (the attempt still counts). With
    `pause_key`, the job's flow key is paused as long (backpressure: say, the tenant's API answered
    429); the queue and other keys flow on."""

    def __init__(self, in_seconds: float = 0, message: str | None = None, *, pause_key: bool = False) -> None:
        self.in_seconds = in_seconds
        self.pause_key = pause_key
        super().__init__(message or f"retry requested in {in_seconds:g}s")


class JobCancelled(PermanentError):
    """Raised by `job.raise_if_cancelled()` once the broker has asked for the job to be cancelled."""
