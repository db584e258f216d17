"""Each API operation as data (method, path, body, how to parse, whether it is safe to retry).

`Client` and `AsyncClient` are thin shells that send these, so both speak exactly the same API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import pydantic
from pydantic_core import to_jsonable_python

from . import _tracing
from ._exceptions import UnexpectedResponse
from ._models import (
    AckItem,
    Attempt,
    AuditEvent,
    Backoff,
    BatchItemResult,
    DeadGroup,
    EnqueuedJob,
    ErrorInfo,
    Heartbeat,
    Job,
    JobSpec,
    LeasedJob,
    NackItem,
    Page,
    QueueStats,
    RedriveStatus,
)

T = TypeVar("T")

# Seconds a long-poll lease may take beyond its wait_seconds before the client gives up on it.
LEASE_READ_MARGIN_S = 10.0


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP request and the parser of its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    # Safe to resend after a request that may have reached the broker (connection reset, timeout).
    idempotent: bool = False
    read_timeout: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _model(cls: type[pydantic.BaseModel]) -> Callable[[Any], Any]:
    def parse(body: Any) -> Any:
        try:
            return cls.model_validate(body)
        except pydantic.ValidationError as exc:
            raise UnexpectedResponse(f"unexpected {cls.__name__} answer: {exc}") from exc

    return parse


def _list_of(cls: type[pydantic.BaseModel], key: str) -> Callable[[Any], Any]:
    def parse(body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get(key), list):
            raise UnexpectedResponse(f"expected an object with a list {key!r}, got {body!r:.200}")
        return [_model(cls)(item) for item in body[key]]

    return parse


def _count(body: Any) -> int:
    if not isinstance(body, dict) or not isinstance(body.get("count"), int):
        raise UnexpectedResponse(f"expected {{'count': n}}, got {body!r:.200}")
    count: int = body["count"]
    return count


def _any(body: Any) -> Any:
    return body


# Fields the broker takes as JSON integers only (it coerces nothing): a whole float goes as an int.
WHOLE_SECONDS = ("timeout_seconds", "visibility_timeout_seconds", "heartbeat_timeout_seconds", "max_runtime_seconds")


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return _whole({k: v for k, v in values.items() if v is not None})


def _whole(body: dict[str, Any]) -> dict[str, Any]:
    for key in WHOLE_SECONDS:
        value = body.get(key)
        if isinstance(value, float) and value.is_integer():
            body[key] = int(value)
    return body


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return to_jsonable_python(value)


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def job_body(spec: JobSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON of one job to enqueue; `payload` is always sent, even when it is null."""
    if not isinstance(spec, JobSpec):
        spec = JobSpec.model_validate(spec)
    body = spec.model_dump(mode="json", exclude_none=True, exclude={"payload"})
    body["payload"] = _jsonable(spec.payload)
    return _whole(body)


def enqueue(queue: str, spec: JobSpec) -> Call[EnqueuedJob]:
    return Call(
        "POST",
        f"/v1/queues/{_seg(queue)}/jobs",
        _model(EnqueuedJob),
        json=job_body(spec),
        idempotent=spec.idempotency_key is not None,
        headers=_tracing.current_headers(),
    )


def enqueue_many(queue: str, jobs: Iterable[JobSpec | Mapping[str, Any]]) -> Call[list[EnqueuedJob]]:
    bodies = [job_body(spec) for spec in jobs]
    return Call(
        "POST",
        f"/v1/queues/{_seg(queue)}/jobs:batch",
        _list_of(EnqueuedJob, "jobs"),
        json={"jobs": bodies},
        idempotent=all("idempotency_key" in body for body in bodies),
        headers=_tracing.current_headers(),
    )


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{_seg(job_id)}", _model(Job), idempotent=True)


def list_jobs(**filters: Any) -> Call[Page[Job]]:
    return Call("GET", "/v1/jobs", _model(Page[Job]), params=_drop_none(filters), idempotent=True)


def cancel(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/cancel", _model(Job))


def replay(job_id: str) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/replay", _model(Job))


def dlq_params(filters: dict[str, Any]) -> dict[str, Any]:
    """Query parameters of the DLQ reads: times as RFC 3339, `payload_contains` as JSON text."""
    filters["since"], filters["until"] = _time(filters.get("since")), _time(filters.get("until"))
    if isinstance(filters.get("payload_contains"), Mapping):
        filters["payload_contains"] = json.dumps(_jsonable(filters["payload_contains"]))
    return _drop_none(filters)


def list_dlq(**filters: Any) -> Call[Page[Job]]:
    return Call("GET", "/v1/dlq", _model(Page[Job]), params=dlq_params(filters), idempotent=True)


def dlq_groups(**filters: Any) -> Call[list[DeadGroup]]:
    return Call("GET", "/v1/dlq/groups", _list_of(DeadGroup, "items"), params=dlq_params(filters), idempotent=True)


def _dlq_selection(ids: Sequence[str] | None, filters: dict[str, Any]) -> dict[str, Any]:
    filters["since"], filters["until"] = _time(filters.get("since")), _time(filters.get("until"))
    body = {k: _jsonable(v) for k, v in filters.items() if v is not None and v is not False}
    if ids is not None:
        body["ids"] = list(ids)
    return body


def replay_dlq(ids: Sequence[str] | None, **filters: Any) -> Call[int]:
    # A dry run changes nothing, so it is safe to resend.
    body = _dlq_selection(ids, filters)
    return Call("POST", "/v1/dlq/replay", _count, json=body, idempotent=bool(body.get("dry_run")))


def purge_dlq(ids: Sequence[str] | None, **filters: Any) -> Call[int]:
    body = _dlq_selection(ids, filters)
    return Call("POST", "/v1/dlq/purge", _count, json=body, idempotent=bool(body.get("dry_run")))


def attempts(job_id: str) -> Call[list[Attempt]]:
    return Call("GET", f"/v1/jobs/{_seg(job_id)}/attempts", _list_of(Attempt, "items"), idempotent=True)


def create_redrive(ids: Sequence[str] | None, **options: Any) -> Call[RedriveStatus]:
    return Call("POST", "/v1/dlq/redrives", _model(RedriveStatus), json=_dlq_selection(ids, options))


def get_redrive(redrive_id: str) -> Call[RedriveStatus]:
    return Call("GET", f"/v1/dlq/redrives/{_seg(redrive_id)}", _model(RedriveStatus), idempotent=True)


def cancel_redrive(redrive_id: str) -> Call[RedriveStatus]:
    # Cancelling a cancelled (or finished) redrive answers it unchanged.
    return Call("POST", f"/v1/dlq/redrives/{_seg(redrive_id)}/cancel", _model(RedriveStatus), idempotent=True)


def audit(**filters: Any) -> Call[Page[AuditEvent]]:
    filters["since"], filters["until"] = _time(filters.get("since")), _time(filters.get("until"))
    return Call("GET", "/v1/audit", _model(Page[AuditEvent]), params=_drop_none(filters), idempotent=True)


EXPORT_PATH = "/v1/dlq/export"


def list_queues() -> Call[list[QueueStats]]:
    return Call("GET", "/v1/queues", _list_of(QueueStats, "items"), idempotent=True)


def get_queue(queue: str) -> Call[QueueStats]:
    return Call("GET", f"/v1/queues/{_seg(queue)}", _model(QueueStats), idempotent=True)


def update_queue(queue: str, **settings: Any) -> Call[QueueStats]:
    body = {k: _jsonable(v) for k, v in settings.items() if v is not UNSET}
    # Setting the same values twice leaves the queue as once.
    return Call("PATCH", f"/v1/queues/{_seg(queue)}", _model(QueueStats), json=body, idempotent=True)


def lease(
    queue: str,
    *,
    worker_id: str,
    max_jobs: int,
    visibility_timeout_seconds: float | None,
    wait_seconds: float,
    types: Sequence[str] | None,
) -> Call[list[LeasedJob]]:
    body = _drop_none(
        {
            "worker_id": worker_id,
            "max_jobs": max_jobs,
            "visibility_timeout_seconds": visibility_timeout_seconds,
            "wait_seconds": wait_seconds,
            "types": list(types) if types is not None else None,
        }
    )
    # Not idempotent: a lost answer leaves its jobs leased until their visibility timeout.
    return Call(
        "POST",
        f"/v1/queues/{_seg(queue)}/leases",
        _list_of(LeasedJob, "jobs"),
        json=body,
        read_timeout=wait_seconds + LEASE_READ_MARGIN_S,
    )


# ack, nack and heartbeat are fenced by lease_id, so resending one can never apply it twice.


def heartbeat(
    job_id: str, lease_id: str, *, progress: Any = None, visibility_timeout_seconds: float | None = None
) -> Call[Heartbeat]:
    body = _drop_none(
        {
            "lease_id": lease_id,
            "progress": _jsonable(progress),
            "visibility_timeout_seconds": visibility_timeout_seconds,
        }
    )
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/heartbeat", _model(Heartbeat), json=body, idempotent=True)


def ack(job_id: str, lease_id: str, result: Any = None) -> Call[Job]:
    body = {"lease_id": lease_id, "result": _jsonable(result)}
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/ack", _model(Job), json=body, idempotent=True)


def release(job_id: str, lease_id: str, *, delay_seconds: float | None = None) -> Call[Job]:
    body = _drop_none({"lease_id": lease_id, "delay_seconds": delay_seconds})
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/release", _model(Job), json=body, idempotent=True)


def error_body(error: ErrorInfo | Mapping[str, Any] | str | BaseException) -> dict[str, Any]:
    """The `error` object of a nack, from a message, a mapping, an ErrorInfo or an exception."""
    if isinstance(error, BaseException):
        error = ErrorInfo(message=str(error) or type(error).__name__, type=type(error).__name__)
    elif isinstance(error, str):
        error = ErrorInfo(message=error)
    elif not isinstance(error, ErrorInfo):
        error = ErrorInfo.model_validate(error)
    return error.model_dump(mode="json", exclude_none=True)


def nack(
    job_id: str,
    lease_id: str,
    error: ErrorInfo | Mapping[str, Any] | str | BaseException,
    *,
    retryable: bool = True,
    retry_in_seconds: float | None = None,
    pause_key: bool = False,
) -> Call[Job]:
    body = _drop_none(
        {
            "lease_id": lease_id,
            "error": error_body(error),
            "retryable": retryable,
            "retry_in_seconds": retry_in_seconds,
            "pause_key": True if pause_key else None,
        }
    )
    return Call("POST", f"/v1/jobs/{_seg(job_id)}/nack", _model(Job), json=body, idempotent=True)


def ack_many(items: Iterable[AckItem | Mapping[str, Any]]) -> Call[list[BatchItemResult]]:
    bodies = []
    for item in items:
        parsed = item if isinstance(item, AckItem) else AckItem.model_validate(item)
        bodies.append({"id": parsed.id, "lease_id": parsed.lease_id, "result": _jsonable(parsed.result)})
    return Call("POST", "/v1/acks", _list_of(BatchItemResult, "results"), json={"items": bodies}, idempotent=True)


def nack_many(items: Iterable[NackItem | Mapping[str, Any]]) -> Call[list[BatchItemResult]]:
    bodies = []
    for item in items:
        if not isinstance(item, NackItem):
            item = NackItem.model_validate({**item, "error": error_body(item["error"])})
        body = item.model_dump(mode="json", exclude_none=True)
        if not body.get("pause_key"):
            body.pop("pause_key", None)
        bodies.append(body)
    return Call("POST", "/v1/nacks", _list_of(BatchItemResult, "results"), json={"items": bodies}, idempotent=True)


def health() -> Call[Any]:
    return Call("GET", "/healthz", _any, idempotent=True)


def ready() -> Call[Any]:
    return Call("GET", "/readyz", _any, idempotent=True)


def backoff_body(backoff: Backoff | Mapping[str, Any] | None) -> Backoff | None:
    if backoff is None or isinstance(backoff, Backoff):
        return backoff
    return Backoff.model_validate(backoff)
