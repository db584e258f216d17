"""Redrives: replay a filtered set of dead jobs in the background, at a rate, with progress and cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response

from jobbroker.api.audit_trail import AuditDep
from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep
from jobbroker.api.forensics_schemas import RedriveOut, RedriveRequest
from jobbroker.api.problems import responses
from jobbroker.api.responses import ORJSON
from jobbroker.api.routes.dlq import chosen, recorded
from jobbroker.api.schemas import CountOut
from jobbroker.core.errors import RedriveNotFound
from jobbroker.keys import Scope

router = APIRouter(tags=["dlq"], **protected(Scope.ADMIN))


async def redrive_id(id: Annotated[str, Path(description="The redrive's id.", examples=["7"])]) -> int:
    if not id.isascii() or not id.isdigit() or not 0 < int(id) < 2**63:
        raise RedriveNotFound(f"no redrive with id {id!r}")
    return int(id)


RedriveIdDep = Annotated[int, Depends(redrive_id)]


@router.post(
    "/v1/dlq/redrives",
    status_code=202,
    response_model=RedriveOut,
    summary="Start a redrive",
    operation_id="createRedrive",
    responses={200: {"model": CountOut, "description": "A dry run: how many jobs it would replay"}, **responses(422)},
)
async def create_redrive(body: RedriveRequest, broker: BrokerDep, audit: AuditDep) -> Response:
    """Replay the dead jobs the filters choose (frozen when the redrive is created; at most `limit`)
    in the background, optionally into `target_queue` and with `payload_patch` (an RFC 7396 JSON
    merge patch: `null` removes a member) applied to each payload, at most `rate_per_second` a
    second. Whichever replica holds a batch replays it; a replica that dies midway loses nothing and
    no job is replayed twice. Follow it with `GET /v1/dlq/redrives/{id}`. `dry_run` and `all` as
    for a bulk replay."""
    selection = chosen(body)
    if body.dry_run:
        return ORJSON({"count": await broker.count_dead(selection), "dry_run": True})
    redrive = await broker.redrives.create(
        selection, body.target_queue, body.payload_patch, body.rate_per_second, audit.actor
    )
    filter = {**recorded(selection), "target_queue": body.target_queue, "rate_per_second": body.rate_per_second}
    await audit("redrive.create", redrive["id"], filter, redrive["total"])
    return ORJSON(redrive, status_code=202)


@router.get(
    "/v1/dlq/redrives/{id}",
    response_model=RedriveOut,
    summary="Get a redrive's progress",
    operation_id="getRedrive",
    responses=responses(404),
)
async def get_redrive(rid: RedriveIdDep, broker: BrokerDep) -> Response:
    """Its state (`running`, `done`, `cancelled`, `failed`), `total`, `done` and `replayed` so far."""
    return ORJSON(await broker.redrives.get(rid))


@router.post(
    "/v1/dlq/redrives/{id}/cancel",
    response_model=RedriveOut,
    summary="Cancel a redrive",
    operation_id="cancelRedrive",
    responses=responses(404),
)
async def cancel_redrive(rid: RedriveIdDep, broker: BrokerDep, audit: AuditDep) -> Response:
    """Stop a running redrive after its current batch; jobs not reached stay dead. Cancelling one
    that has ended changes nothing and answers it as it is."""
    redrive, cancelled = await broker.redrives.cancel(rid)
    if cancelled:
        await audit("redrive.cancel", redrive["id"], count=redrive["done"])
    return ORJSON(redrive)
