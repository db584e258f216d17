"""Enqueue and inspect jobs; cancel and replay them."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import Response

from jobbroker import telemetry
from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import requires
from jobbroker.api.deps import BrokerDep, JobIdDep, QueueName
from jobbroker.api.forensics_schemas import AttemptList
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import (
    LINE_PATTERN,
    NAME_PATTERN,
    QUEUE_PATTERN,
    TEXT_PATTERN,
    AwareDatetime,
    EnqueueBatchOut,
    EnqueueBatchRequest,
    EnqueueOut,
    EnqueueRequest,
    JobOut,
    JobPage,
)
from jobbroker.core.errors import InvalidInput
from jobbroker.core.models import JobFilter
from jobbroker.core.states import JobState
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["jobs"], responses=responses(401, 403))
PRODUCE = [requires(Scope.PRODUCE)]
ADMIN = [requires(Scope.ADMIN)]


async def payload_contains(
    payload_contains: Annotated[
        str | None,
        Query(
            max_length=10_000,
            description='A JSON object the payload contains (`@>`), e.g. `{"customer": {"id": 7}}`.',
            examples=['{"customer": {"id": 7}}'],
        ),
    ] = None,
) -> dict[str, object] | None:
    if payload_contains is None:
        return None
    try:
        value = orjson.loads(payload_contains)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("payload_contains must be a JSON object", field="payload_contains")
    return value


PayloadContains = Annotated[dict[str, object] | None, Depends(payload_contains)]
CorrelationHeader = Annotated[
    str | None,
    Header(
        alias="X-Correlation-ID",
        max_length=255,
        pattern=LINE_PATTERN,
        description="Stored as the job's correlation_id.",
    ),
]
TraceparentHeader = Annotated[
    str | None,
    Header(
        description="W3C trace context, stored with each job (its `trace_context`), returned on lease and sent on "
        "push. An invalid one is ignored, as the W3C spec asks.",
    ),
]
TracestateHeader = Annotated[
    str | None, Header(description="W3C tracestate, kept beside a valid traceparent (up to 512 characters).")
]


@router.post(
    "/v1/queues/{queue}/jobs",
    status_code=201,
    response_model=EnqueueOut,
    summary="Enqueue a job",
    dependencies=PRODUCE,
    responses={
        200: {"model": EnqueueOut, "description": "Duplicate: the idempotency key exists"},
        **responses(409, 413),
    },
)
async def enqueue(
    queue: QueueName,
    body: EnqueueRequest,
    broker: BrokerDep,
    correlation_id: CorrelationHeader = None,
    traceparent: TraceparentHeader = None,
    tracestate: TracestateHeader = None,
) -> Response:
    """Add one job to `queue`. It is leased once `run_at` (now, `delay_seconds` later, or the given
    instant) has come. A repeated `idempotency_key` in the same queue creates nothing and answers the
    existing job with status 200 and `"duplicate": true`; if that job has another type or payload, the
    answer is 409 `idempotency_conflict` naming it (`job_id`)."""
    trace = telemetry.job_trace_context(traceparent, tracestate)
    [(job, duplicate)] = await broker.enqueue(queue, [body.to_core(correlation_id, trace)])
    return ORJSON({**job, "duplicate": duplicate}, status_code=200 if duplicate else 201)


@router.post(
    "/v1/queues/{queue}/jobs:batch",
    status_code=201,
    response_model=EnqueueBatchOut,
    summary="Enqueue up to 1000 jobs at once",
    dependencies=PRODUCE,
    responses=responses(409, 413),
)
async def enqueue_batch(
    queue: QueueName,
    body: EnqueueBatchRequest,
    broker: BrokerDep,
    correlation_id: CorrelationHeader = None,
    traceparent: TraceparentHeader = None,
    tracestate: TracestateHeader = None,
) -> Response:
    """Add up to 1000 jobs in one transaction: all are stored or, on any invalid item, none.
    Answers each job in input order, with `duplicate` for repeated idempotency keys; a key naming
    a job of another type or payload is 409 `idempotency_conflict` and stores nothing."""
    trace = telemetry.job_trace_context(traceparent, tracestate)
    answers = await broker.enqueue(queue, [j.to_core(correlation_id, trace) for j in body.jobs])
    return ORJSON({"jobs": [{**job, "duplicate": dup} for job, dup in answers]}, status_code=201)


@router.get("/v1/jobs/{id}", response_model=JobOut, summary="Get a job", responses=responses(404), dependencies=ADMIN)
async def get_job(job_id: JobIdDep, broker: BrokerDep) -> Response:
    """One job with its state, attempts, result and error history."""
    return ORJSON(await broker.jobs.get(job_id))


@router.get("/v1/jobs", response_model=JobPage, summary="List jobs", dependencies=ADMIN)
async def list_jobs(
    broker: BrokerDep,
    contains: PayloadContains,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    state: JobState | None = None,
    type: Annotated[str | None, Query(max_length=200, pattern=NAME_PATTERN)] = None,
    correlation_id: Annotated[str | None, Query(max_length=255, pattern=TEXT_PATTERN)] = None,
    tag: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
    since: Annotated[AwareDatetime | None, Query(description="Finished (or, unfinished, created) at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Finished (or, unfinished, created) before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """Jobs newest first, filtered by any of queue, state, type, correlation id, tag, payload
    containment and time. Follow `next_cursor` for the next page; it is null on the last."""
    where = JobFilter(
        queue=queue,
        state=state,
        type=type,
        correlation_id=correlation_id,
        tag=tag,
        payload_contains=contains,
        since=since,
        until=until,
    )
    return ORJSON(await page(broker, where, cursor, limit))


async def page(broker: BrokerDep, where: JobFilter, cursor: str | None, limit: int) -> dict[str, object]:
    items = await broker.jobs.list(where, decode_cursor(cursor), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(int(items[-1]["id"])) if more else None}


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix == "id" and value.isdigit() and int(value) < 2**63:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidInput("cursor is not one this API gave out")


@router.post(
    "/v1/jobs/{id}/cancel",
    response_model=JobOut,
    summary="Cancel a job",
    responses=responses(404, 409),
    dependencies=ADMIN,
)
async def cancel(job_id: JobIdDep, broker: BrokerDep, audit: AuditDep) -> Response:
    """A pending or retrying job becomes `cancelled`. A running (`active`) job stays active with
    `cancel_requested: true`; its worker learns this on its next heartbeat. Finished jobs answer 409."""
    job = await broker.cancel(job_id)
    await audit("job.cancel", target=str(job_id), count=1)
    return ORJSON(job)


@router.post(
    "/v1/jobs/{id}/replay",
    response_model=JobOut,
    summary="Replay a dead or cancelled job",
    dependencies=ADMIN,
    responses=responses(404, 409),
)
async def replay(job_id: JobIdDep, broker: BrokerDep, audit: AuditDep) -> Response:
    """Send a `dead` or `cancelled` job back to `pending` with attempts reset to 0. Its error history
    is kept. Other states answer 409."""
    job = await broker.replay(job_id)
    await audit("job.replay", target=str(job_id), count=1)
    return ORJSON(job)


@router.get(
    "/v1/jobs/{id}/attempts",
    response_model=AttemptList,
    summary="List a job's attempts",
    operation_id="listJobAttempts",
    responses=responses(404),
    dependencies=ADMIN,
)
async def list_attempts(job_id: JobIdDep, broker: BrokerDep) -> Response:
    """Every attempt of the job, oldest first: who held it, when, how many heartbeats, how it ended
    (`succeeded`, `failed`, `lease_expired`, `released`, `cancelled`, `max_runtime_exceeded`) with its
    error and fingerprint, and a push delivery's HTTP status. The running attempt comes last, with no
    `ended_at` or `outcome`. Attempts go with their job when retention deletes it."""
    return ORJSON({"items": await broker.jobs.attempts(job_id)})
