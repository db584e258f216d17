"""The audit log: one method per named query in sql/audit.sql."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("audit")


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        actor: str,
        action: str,
        target: str | None,
        filter: dict[str, Any] | None,
        count: int | None,
        request_id: str | None,
    ) -> None:
        q = Q["audit_record"]
        args = {
            "actor": actor,
            "action": action,
            "target": target,
            "filter": filter,
            "count": count,
            "request_id": request_id,
        }
        async with self.db.connection() as conn:
            await conn.execute(q.sql, *q.args(args))

    async def list(
        self,
        action: str | None,
        actor: str | None,
        since: datetime | None,
        until: datetime | None,
        before_id: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        q = Q["audit_list"]
        args = {"action": action, "actor": actor, "since": since, "until": until, "before_id": before_id}
        async with self.db.connection() as conn:
            rows = await conn.fetch(q.sql, *q.args({**args, "limit": limit}))
        return [{**dict(r), "id": str(r["id"])} for r in rows]
