"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from jobbroker.api.schemas import QUEUE_PATTERN
from jobbroker.broker import Broker
from jobbroker.core.models import parse_job_id
from jobbroker.settings import Settings


# Dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency in a thread pool,
# a thread hand-off per request that cost more CPU than the rest of a lease.
async def get_broker(request: Request) -> Broker:
    return request.app.state.broker


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def job_id(id: Annotated[str, Path(description="The job's id.", examples=["1042"])]) -> int:
    return parse_job_id(id)


BrokerDep = Annotated[Broker, Depends(get_broker)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
JobIdDep = Annotated[int, Depends(job_id)]
QueueName = Annotated[str, Path(pattern=QUEUE_PATTERN, description="Queue name.", examples=["emails"])]
