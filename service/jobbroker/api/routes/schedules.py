"""Recurring jobs: create, inspect, change and delete schedules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.schedule_schemas import ScheduleCreate, ScheduleList, ScheduleOut, SchedulePatch
from jobbroker.api.schemas import QUEUE_PATTERN
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["schedules"], **protected(Scope.ADMIN))
ScheduleName = Annotated[
    str, Path(pattern=QUEUE_PATTERN, description="The schedule's name.", examples=["nightly-report"])
]


@router.post(
    "/v1/schedules",
    status_code=201,
    response_model=ScheduleOut,
    summary="Create a schedule",
    responses=responses(409, 413),
)
async def create_schedule(body: ScheduleCreate, broker: BrokerDep, audit: AuditDep) -> Response:
    """Enqueue a job of `type` with `payload` into `queue` each time the cron expression fires,
    read in `timezone`. Every replica runs the ticker; each fire time enqueues exactly one job (its
    idempotency key is `schedule:<name>:<fire time>`). A taken name answers 409 `schedule_exists`."""
    schedule = await broker.create_schedule(body.model_dump())
    await audit("schedule.create", body.name, {"queue": body.queue, "type": body.type, "cron": body.cron})
    return ORJSON(schedule, status_code=201)


@router.get("/v1/schedules", response_model=ScheduleList, summary="List schedules")
async def list_schedules(broker: BrokerDep) -> Response:
    """Every schedule by name, with its next and last fire times and the last job it enqueued."""
    return ORJSON({"items": await broker.schedules.list()})


@router.get("/v1/schedules/{name}", response_model=ScheduleOut, summary="Get a schedule", responses=responses(404))
async def get_schedule(name: ScheduleName, broker: BrokerDep) -> Response:
    """One schedule with `next_run_at`, `last_run_at` and `last_job_id`."""
    return ORJSON(await broker.schedules.get(name))


@router.patch(
    "/v1/schedules/{name}", response_model=ScheduleOut, summary="Change a schedule", responses=responses(404, 413)
)
async def update_schedule(name: ScheduleName, body: SchedulePatch, broker: BrokerDep, audit: AuditDep) -> Response:
    """Change any of the given fields. A new cron expression, time zone or pause state takes effect
    from now: fire times missed while paused are skipped, not caught up."""
    changes = body.changes()
    schedule = await broker.update_schedule(name, changes)
    await audit("schedule.update", name, {"fields": sorted(changes)})
    return ORJSON(schedule)


@router.delete("/v1/schedules/{name}", status_code=204, summary="Delete a schedule", responses=responses(404))
async def delete_schedule(name: ScheduleName, broker: BrokerDep, audit: AuditDep) -> Response:
    """Stop the schedule for good; jobs it already enqueued are left alone."""
    await broker.schedules.delete(name)
    await audit("schedule.delete", name)
    return Response(status_code=204)
