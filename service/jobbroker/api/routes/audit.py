"""The audit log: who did what, when."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from jobbroker.api.auth import protected
from jobbroker.api.deps import BrokerDep
from jobbroker.api.forensics_schemas import AuditPage
from jobbroker.api.responses import ORJSON
from jobbroker.api.routes.jobs import decode_cursor, encode_cursor
from jobbroker.api.schemas import AwareDatetime
from jobbroker.keys import Scope

router = APIRouter(tags=["audit"], **protected(Scope.ADMIN))


@router.get("/v1/audit", response_model=AuditPage, summary="List audit events", operation_id="listAuditEvents")
async def list_audit_events(
    broker: BrokerDep,
    action: Annotated[str | None, Query(max_length=64, examples=["dlq.replay"])] = None,
    actor: Annotated[str | None, Query(max_length=64, description="An API key's public id, or `anonymous`.")] = None,
    since: Annotated[AwareDatetime | None, Query(description="At or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    """Every admin action newest first: replays, purges and redrives (with their filter and count),
    job cancels, queue and key changes, subscription and schedule changes. `actor` is the API key's
    public id (shown by `jobbroker keys create`), never the key; no secret is ever recorded."""
    items = await broker.audit.list(action, actor, since, until, decode_cursor(cursor), limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return ORJSON({"items": items, "next_cursor": encode_cursor(int(items[-1]["id"])) if more else None})
