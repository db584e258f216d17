"""Recording admin actions in the audit log, one call per action:

    async def cancel(job_id: JobIdDep, broker: BrokerDep, audit: AuditDep) -> Response:
        job = await broker.cancel(job_id)
        await audit("job.cancel", target=str(job_id))

The actor is the caller's API key's public id (`anonymous` with authentication off), never the key;
`filter` and `target` name what was acted on and must never carry a secret.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from jobbroker.api.auth import API_KEY
from jobbroker.broker import Broker
from jobbroker.logs import REQUEST_ID

ANONYMOUS = "anonymous"


class Audit:
    def __init__(self, broker: Broker, actor: str, request_id: str | None) -> None:
        self.broker = broker
        self.actor = actor
        self.request_id = request_id

    async def __call__(
        self, action: str, target: str | None = None, filter: dict[str, Any] | None = None, count: int | None = None
    ) -> None:
        await self.broker.audit.record(self.actor, action, target, filter, count, self.request_id)


async def get_audit(request: Request) -> Audit:
    key = request.scope.get(API_KEY)
    return Audit(request.app.state.broker, key.id if key is not None else ANONYMOUS, REQUEST_ID.get(None))


AuditDep = Annotated[Audit, Depends(get_audit)]
