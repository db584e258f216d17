"""Prometheus metrics in the text exposition format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from jobbroker import metrics
from jobbroker.api.auth import requires
from jobbroker.api.deps import BrokerDep
from jobbroker.api.jsonbody import JsonRoute
from jobbroker.keys import Scope

router = APIRouter(route_class=JsonRoute, tags=["health"])
_metrics_scope = requires(Scope.METRICS).dependency


async def metrics_access(request: Request) -> None:
    """Open, unless `metrics.require_auth`: then a key with the `metrics` (or `admin`) scope."""
    if request.app.state.settings.metrics.require_auth:
        await _metrics_scope(request, None)  # type: ignore[misc]


@router.get("/metrics", include_in_schema=False)
async def scrape(broker: BrokerDep, _: Annotated[None, Depends(metrics_access)]) -> Response:
    return Response(await metrics.exposition(broker.gauges), media_type=CONTENT_TYPE_LATEST)
