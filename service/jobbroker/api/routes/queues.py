"""Queue statistics and settings, and the flow keys of a queue."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep, QueueName
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import (
    QueueKeyOut,
    QueueKeyPage,
    QueueKeyPatch,
    QueueList,
    QueueOut,
    QueuePatch,
    QueueStatsOut,
)
from jobbroker.core.errors import InvalidInput
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["queues"], **protected(Scope.ADMIN))
# Wire names of the settings that differ from the store's.
RENAMED = {
    "retention_seconds": "retention",
    "dead_retention_seconds": "dead_retention",
    "default_visibility_timeout_seconds": "default_visibility_timeout",
    "default_heartbeat_timeout_seconds": "default_heartbeat_timeout",
    "default_max_runtime_seconds": "default_max_runtime",
}
FLOW_FIELDS = ("max_concurrency_per_key", "rate_limit_per_key", "fairness")
KeyName = Annotated[str, Path(min_length=1, max_length=200, description="The flow key.", examples=["customer-42"])]


@router.get("/v1/queues", response_model=QueueList, summary="List queues with statistics")
async def list_queues(broker: BrokerDep) -> Response:
    """Every queue that has jobs or settings: job counts by state, the age of the oldest ready job,
    active leases and DLQ size."""
    return ORJSON({"items": await broker.queues.stats()})


@router.get("/v1/queues/{queue}", response_model=QueueOut, summary="Get one queue's statistics")
async def get_queue(queue: QueueName, broker: BrokerDep) -> Response:
    """Counts by state, oldest pending age, active leases, DLQ size and settings of one queue."""
    return ORJSON(await broker.queue_stats(queue))


@router.get("/v1/queues/{queue}/stats", response_model=QueueStatsOut, summary="Get a queue's throughput")
async def get_queue_stats(
    queue: QueueName,
    broker: BrokerDep,
    minutes: Annotated[int, Query(ge=1, le=1440, description="How many minutes back, the current one included.")] = 60,
) -> Response:
    """Jobs that succeeded and that died in each minute of the last `minutes` (default an hour),
    oldest first, every minute present: the queue's throughput and failure rate."""
    buckets = await broker.queues.throughput(queue, minutes)
    return ORJSON({"queue": queue, "bucket_seconds": 60, "buckets": buckets})


@router.patch("/v1/queues/{queue}", response_model=QueueOut, summary="Change a queue's settings")
async def update_queue(queue: QueueName, body: QueuePatch, broker: BrokerDep, audit: AuditDep) -> Response:
    """Pause or resume leasing, cap concurrent active jobs, limit leases per second, set the default
    retry policy, retention and clocks, and the per-key limits and fairness (`flow`). Only the fields
    given change; `null` lifts a limit."""
    changes = body.model_dump(include=body.model_fields_set - {"flow"})
    changes = {RENAMED.get(k, k): v for k, v in changes.items()}
    if "flow" in body.model_fields_set:
        flow = body.flow
        given = flow.model_fields_set if flow is not None else set(FLOW_FIELDS)
        values = flow.model_dump() if flow is not None else {}
        changes.update({f"flow_{name}": values.get(name) for name in FLOW_FIELDS if name in given})
    await broker.queues.update(queue, changes)
    await audit("queue.update", target=queue, filter=body.model_dump(include=body.model_fields_set))
    return ORJSON(await broker.queue_stats(queue))


@router.get(
    "/v1/queues/{queue}/keys",
    response_model=QueueKeyPage,
    summary="List a queue's flow keys",
    operation_id="listQueueKeys",
)
async def list_queue_keys(
    queue: QueueName,
    broker: BrokerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=400, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """The keys of a queue in key order, each with its ready and active jobs, its pause and its own
    limits (null: the queue's `flow` defaults). Follow `next_cursor`; it is null on the last page."""
    items = await broker.jobs.keys.list(queue, _decode_key_cursor(cursor), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ORJSON({"items": items, "next_cursor": _encode_key_cursor(items[-1]["key"]) if more else None})


@router.get(
    "/v1/queues/{queue}/keys/{key:path}",
    response_model=QueueKeyOut,
    summary="Get one flow key",
    operation_id="getQueueKey",
)
async def get_queue_key(queue: QueueName, key: KeyName, broker: BrokerDep) -> Response:
    """One key's ready and active jobs, pause and limits. A key no job has carried answers zeros."""
    return ORJSON(await broker.jobs.keys.get(queue, key))


@router.patch(
    "/v1/queues/{queue}/keys/{key:path}",
    response_model=QueueKeyOut,
    summary="Change one flow key's limits or pause it",
    operation_id="updateQueueKey",
)
async def update_queue_key(
    queue: QueueName, key: KeyName, body: QueueKeyPatch, broker: BrokerDep, audit: AuditDep
) -> Response:
    """Override the queue's per-key defaults for this key (`max_concurrency`, `rate_limit`), or hold
    its jobs (`paused`, or `paused_until` an instant); the queue and other keys flow on. Only the
    fields given change; `null` goes back to the queue's default."""
    changes: dict[str, Any] = body.model_dump(include=body.model_fields_set)
    await broker.jobs.keys.update(queue, key, changes)
    await audit("key.update", target=f"{queue}/{key}", filter=changes)
    return ORJSON(await broker.jobs.keys.get(queue, key))


def _encode_key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"key:{key}".encode()).decode().rstrip("=")


def _decode_key_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    prefix, _, value = raw.partition(":")
    if prefix != "key" or not value:
        raise InvalidInput("cursor is not one this API gave out")
    return value
