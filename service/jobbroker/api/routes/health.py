"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from jobbroker.api.deps import BrokerDep
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.api.responses import ORJSON
from jobbroker.api.schemas import Health
from jobbroker.core.errors import DatabaseUnavailable

router = APIRouter(route_class=JsonRoute, tags=["health"])


# Every path refuses a declared body over the request limit before routing.
TOO_LARGE = {413: {"description": "Request body too large"}}


@router.get("/healthz", response_model=Health, summary="Liveness", responses=TOO_LARGE)
async def healthz() -> Response:
    """The process is up. Never touches the database."""
    return ORJSON({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness",
    responses={503: {"model": Health, "description": "Not ready"}, **TOO_LARGE},
)
async def readyz(broker: BrokerDep) -> Response:
    """Ready when the database answers and its schema is at the version this broker expects."""
    try:
        current = await broker.schema_is_current()
    except DatabaseUnavailable:
        return ORJSON({"status": "unavailable", "database": False, "schema_current": None}, status_code=503)
    status = 200 if current else 503
    return ORJSON(
        {"status": "ok" if current else "unavailable", "database": True, "schema_current": current}, status_code=status
    )
