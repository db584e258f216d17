"""The worker protocol: lease, heartbeat, ack, nack (single and batched), release."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep, JobIdDep, QueueName
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import (
    AckBatchRequest,
    AckItem,
    AckRequest,
    HeartbeatOut,
    HeartbeatRequest,
    JobOut,
    LeaseOut,
    LeaseRequest,
    NackBatchRequest,
    NackItem,
    NackRequest,
    ReleaseRequest,
    SettleBatchOut,
)
from jobbroker.core.errors import JobNotFound
from jobbroker.core.models import Settle, job_id_or_none
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["leases"], **protected(Scope.CONSUME))


@router.post("/v1/queues/{queue}/leases", response_model=LeaseOut, summary="Lease jobs")
async def lease(queue: QueueName, body: LeaseRequest, broker: BrokerDep, request: Request) -> Response:
    """Take up to `max_jobs` ready jobs, lowest priority value first, then oldest `run_at`. Each comes
    with a `lease_id` that ack, nack and heartbeat must carry, valid until `lease_expires_at`. With
    `wait_seconds`, an empty queue holds the request open until a job arrives or the time is up."""
    jobs = await broker.lease(
        queue,
        body.worker_id,
        body.max_jobs,
        body.visibility_timeout_seconds,
        body.wait_seconds,
        body.types,
        gone=request.is_disconnected,
    )
    return ORJSON({"jobs": jobs})


@router.post(
    "/v1/jobs/{id}/heartbeat", response_model=HeartbeatOut, summary="Extend a lease", responses=responses(404, 409)
)
async def heartbeat(job_id: JobIdDep, body: HeartbeatRequest, broker: BrokerDep) -> Response:
    """Push `lease_expires_at` out by the visibility timeout, optionally record `progress`, and learn
    whether an operator asked to cancel the job (`cancel_requested`)."""
    return ORJSON(await broker.heartbeat(job_id, body.lease_id, body.visibility_timeout_seconds, body.progress))


@router.post(
    "/v1/jobs/{id}/ack", response_model=JobOut, summary="Acknowledge a job", responses=responses(404, 409, 413)
)
async def ack(job_id: JobIdDep, body: AckRequest, broker: BrokerDep) -> Response:
    """Mark the leased job `succeeded`, storing `result`. A lease that is no longer the job's current
    one answers 409 `lease_lost` and changes nothing; repeating a successful ack is harmless."""
    return ORJSON(await broker.ack(job_id, body.lease_id, body.result))


@router.post(
    "/v1/jobs/{id}/nack", response_model=JobOut, summary="Report a failed attempt", responses=responses(404, 409, 413)
)
async def nack(job_id: JobIdDep, body: NackRequest, broker: BrokerDep) -> Response:
    """Record the error. A retryable failure with attempts left goes to `retrying` after exponential
    backoff (or `retry_in_seconds`); otherwise the job is `dead` and appears in the DLQ. With
    `pause_key`, the job's flow key is paused for `retry_in_seconds` (backpressure for that key only)."""
    error = body.error.model_dump(exclude_none=True)
    return ORJSON(
        await broker.nack(job_id, body.lease_id, error, body.retryable, body.retry_in_seconds, pause_key=body.pause_key)
    )


@router.post(
    "/v1/jobs/{id}/release", response_model=JobOut, summary="Give a job back unrun", responses=responses(404, 409)
)
async def release(job_id: JobIdDep, body: ReleaseRequest, broker: BrokerDep) -> Response:
    """For a worker shutting down: the job goes back to waiting (after `delay_seconds`, default at
    once) and its attempt is returned, so a release never moves a job toward the DLQ. A job whose
    cancel was requested ends `cancelled`."""
    return ORJSON(await broker.release(job_id, body.lease_id, body.delay_seconds))


@router.post("/v1/acks", response_model=SettleBatchOut, summary="Acknowledge many jobs", responses=responses(413))
async def ack_many(body: AckBatchRequest, broker: BrokerDep) -> Response:
    """Up to 1000 acks in one statement, one outcome per item (`ok`, or `code` such as `lease_lost`;
    an id no job can have is `job_not_found`, and the other items proceed)."""
    items = [Settle(job_id, i.lease_id, result=i.result) for i, job_id in _with_ids(body.items)]
    return ORJSON({"results": _merge(body.items, await broker.ack_many(items) if items else [])})


@router.post(
    "/v1/nacks", response_model=SettleBatchOut, summary="Report many failed attempts", responses=responses(413)
)
async def nack_many(body: NackBatchRequest, broker: BrokerDep) -> Response:
    """Up to 1000 nacks in one statement, one outcome per item (as for acks)."""
    items = []
    for i, job_id in _with_ids(body.items):
        error = i.error.model_dump(exclude_none=True)
        items.append(
            Settle(
                job_id,
                i.lease_id,
                error=error,
                retryable=i.retryable,
                retry_in_s=i.retry_in_seconds,
                pause_key=i.pause_key,
            )
        )
    return ORJSON({"results": _merge(body.items, await broker.nack_many(items) if items else [])})


def _with_ids(items: Sequence[AckItem | NackItem]) -> Iterator[tuple[Any, int]]:
    """The items whose id a job can have, with that id."""
    for item in items:
        job_id = job_id_or_none(item.id)
        if job_id is not None:
            yield item, job_id


def _merge(items: Sequence[AckItem | NackItem], outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The store's outcomes in input order, `job_not_found` for the items it never saw."""
    settled = iter(outcomes)
    missing = {"ok": False, "code": JobNotFound.code}
    return [next(settled) if job_id_or_none(i.id) is not None else {"id": i.id, **missing} for i in items]
