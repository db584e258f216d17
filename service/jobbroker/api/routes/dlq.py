"""The dead-letter queue: inspect, group and export dead jobs; replay or purge them in bulk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep
from jobbroker.api.forensics_schemas import DeadGroupList
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.routes.jobs import PayloadContains, page
from jobbroker.api.schemas import (
    NAME_PATTERN,
    QUEUE_PATTERN,
    TEXT_PATTERN,
    AwareDatetime,
    CountOut,
    DeadSelectionRequest,
    JobPage,
)
from jobbroker.core.errors import FilterRequired
from jobbroker.core.models import DeadSelection, JobFilter
from jobbroker.core.states import JobState
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["dlq"], **protected(Scope.ADMIN))


async def dead_filter(
    payload_contains: PayloadContains,
    queue: Annotated[str | None, Query(pattern=QUEUE_PATTERN)] = None,
    type: Annotated[str | None, Query(max_length=200, pattern=NAME_PATTERN)] = None,
    error: Annotated[
        str | None,
        Query(
            min_length=1, max_length=500, pattern=TEXT_PATTERN, description="Substring of an error's message or type."
        ),
    ] = None,
    since: Annotated[AwareDatetime | None, Query(description="Died at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Died before.")] = None,
    fingerprint: Annotated[
        str | None, Query(pattern=r"^[0-9a-f]{16}$", description="The fingerprint of the last failure.")
    ] = None,
) -> JobFilter:
    return JobFilter(
        queue=queue,
        state=JobState.DEAD,
        type=type,
        error=error,
        since=since,
        until=until,
        fingerprint=fingerprint,
        payload_contains=payload_contains,
    )


DeadFilter = Annotated[JobFilter, Depends(dead_filter)]


@router.get("/v1/dlq", response_model=JobPage, summary="List dead jobs")
async def list_dead(
    broker: BrokerDep,
    where: DeadFilter,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Dead jobs newest first with their full error history (each failed attempt's error, worker and
    fingerprint)."""
    return ORJSON(await page(broker, where, cursor, limit))


@router.get(
    "/v1/dlq/groups", response_model=DeadGroupList, summary="Group dead jobs by error", operation_id="listDeadJobGroups"
)
async def list_dead_groups(
    broker: BrokerDep, where: DeadFilter, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> Response:
    """Dead jobs grouped by the fingerprint of their last failure (its type and message with numbers,
    ids, hex, quoted values and addresses masked), largest group first: how many, since when, in which
    queues and types, with the newest member's message as a sample. Replay or purge a group with its
    `fingerprint` as the filter."""
    return ORJSON({"items": await broker.jobs.dead_groups(where, limit)})


@router.get(
    "/v1/dlq/export",
    summary="Export dead jobs as NDJSON",
    operation_id="exportDeadJobs",
    response_class=StreamingResponse,
    responses={200: {"description": "One dead job a line", "content": {"application/x-ndjson": {}}}},
)
async def export_dead(broker: BrokerDep, where: DeadFilter) -> StreamingResponse:
    """Every dead job matching the filters, newest first, one JSON object (the job with its error
    history) per line. Streamed a page at a time: memory stays flat however many jobs there are."""

    async def lines() -> AsyncIterator[bytes]:
        async for jobs in broker.export_dead(where):
            yield b"".join(orjson.dumps(job) + b"\n" for job in jobs)

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def chosen(body: DeadSelectionRequest) -> DeadSelection:
    """The selection, unless it names no ids and no filter without saying `all`."""
    selection = body.to_core()
    if selection.chooses_nothing and not body.all:
        raise FilterRequired(
            "choose dead jobs by ids or by a filter (queue, type, error, since, until, fingerprint, "
            'payload_contains), or send "all": true to act on every dead job'
        )
    return selection


def recorded(selection: DeadSelection) -> dict[str, Any]:
    """A selection as the audit log keeps it."""
    ids = {"ids": [str(i) for i in selection.ids]} if selection.ids is not None else {}
    return {**selection.filter(), **ids, "limit": selection.limit}


@router.post(
    "/v1/dlq/replay",
    response_model=CountOut,
    summary="Replay dead jobs in bulk",
    responses=responses(422),
)
async def replay_dead(body: DeadSelectionRequest, broker: BrokerDep, audit: AuditDep) -> Response:
    """Send dead jobs chosen by `ids` or by filters (all given filters must match) back to `pending`,
    at most `limit` of them; answers how many moved. `dry_run: true` only counts them. With no ids
    and no filter the answer is `422 filter_required` unless the body says `"all": true`."""
    selection = chosen(body)
    if body.dry_run:
        return ORJSON({"count": await broker.count_dead(selection), "dry_run": True})
    count = await broker.replay_dead(selection)
    await audit("dlq.replay", filter=recorded(selection), count=count)
    return ORJSON({"count": count})


@router.post(
    "/v1/dlq/purge",
    response_model=CountOut,
    summary="Delete dead jobs in bulk",
    responses=responses(422),
)
async def purge_dead(body: DeadSelectionRequest, broker: BrokerDep, audit: AuditDep) -> Response:
    """Delete dead jobs chosen by `ids` or by filters, at most `limit`, with their attempts; answers
    how many went. `dry_run` and `all` as for a replay."""
    selection = chosen(body)
    if body.dry_run:
        return ORJSON({"count": await broker.count_dead(selection), "dry_run": True})
    count = await broker.purge_dead(selection)
    await audit("dlq.purge", filter=recorded(selection), count=count)
    return ORJSON({"count": count})
