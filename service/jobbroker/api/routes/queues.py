"""Queue statistics and settings."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep, QueueName
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import QueueList, QueueOut, QueuePatch
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["queues"], **protected(Scope.ADMIN))
# Wire names of the settings that differ from the store's.
RENAMED = {"retention_seconds": "retention", "dead_retention_seconds": "dead_retention"}


@router.get("/v1/queues", response_model=QueueList, summary="List queues with statistics")
async def list_queues(broker: BrokerDep) -> Response:
    """Every queue that has jobs or settings: job counts by state, the age of the oldest ready job,
    active leases and DLQ size."""
    return ORJSON({"items": await broker.queues.stats()})


@router.get("/v1/queues/{queue}", response_model=QueueOut, summary="Get one queue's statistics")
async def get_queue(queue: QueueName, broker: BrokerDep) -> Response:
    """Counts by state, oldest pending age, active leases, DLQ size and settings of one queue."""
    return ORJSON(await broker.queue_stats(queue))


@router.patch("/v1/queues/{queue}", response_model=QueueOut, summary="Change a queue's settings")
async def update_queue(queue: QueueName, body: QueuePatch, broker: BrokerDep) -> Response:
    """Pause or resume leasing, cap concurrent active jobs, limit leases per second, and set the
    default retry policy and retention. Only the fields given change; `null` lifts a limit."""
    changes = body.model_dump(include=body.model_fields_set)
    await broker.queues.update(queue, {RENAMED.get(k, k): v for k, v in changes.items()})
    return ORJSON(await broker.queue_stats(queue))
