"""The dead-letter queue: inspect dead jobs, replay or purge them in bulk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.responses import ORJSON
from jobbroker.api.routes.jobs import page
from jobbroker.api.schemas import (
    NAME_PATTERN,
    QUEUE_PATTERN,
    TEXT_PATTERN,
    AwareDatetime,
    CountOut,
    DeadSelectionRequest,
    JobPage,
)
from jobbroker.core.models import DeadSelection, JobFilter, job_id_or_none
from jobbroker.core.states import JobState
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["dlq"], **protected(Scope.ADMIN))


@router.get("/v1/dlq", response_model=JobPage, summary="List dead jobs")
async def list_dead(
    broker: BrokerDep,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    type: Annotated[str | None, Query(max_length=200, pattern=NAME_PATTERN)] = None,
    error: Annotated[
        str | None,
        Query(max_length=500, pattern=TEXT_PATTERN, description="Substring of a recorded error's message or type."),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Died at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Died before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Dead jobs newest first with their full error history (each failed attempt's error and worker)."""
    where = JobFilter(queue=queue, state=JobState.DEAD, type=type, error=error, since=since, until=until)
    return ORJSON(await page(broker, where, cursor, limit))


def _selection(body: DeadSelectionRequest) -> DeadSelection:
    ids = None if body.ids is None else tuple(i for i in map(job_id_or_none, body.ids) if i is not None)
    return DeadSelection(ids, body.queue, body.type, body.error, body.since, body.until, body.limit)


@router.post("/v1/dlq/replay", response_model=CountOut, summary="Replay dead jobs in bulk")
async def replay_dead(body: DeadSelectionRequest, broker: BrokerDep) -> Response:
    """Send dead jobs chosen by `ids` or by filters (all given filters must match) back to `pending`,
    at most `limit` of them; answers how many moved."""
    return ORJSON({"count": await broker.replay_dead(_selection(body))})


@router.post("/v1/dlq/purge", response_model=CountOut, summary="Delete dead jobs in bulk")
async def purge_dead(body: DeadSelectionRequest, broker: BrokerDep) -> Response:
    """Delete dead jobs chosen by `ids` or by filters, at most `limit`; answers how many went."""
    return ORJSON({"count": await broker.purge_dead(_selection(body))})
