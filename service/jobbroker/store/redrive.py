"""Redrives: one method per named query in sql/redrive.sql."""

from __future__ import annotations

import math
from typing import Any

import asyncpg

from jobbroker.core.errors import RedriveNotFound
from jobbroker.core.models import DeadSelection
from jobbroker.store.db import Database
from jobbroker.store.job import JobStore
from jobbroker.store.queries import load

Q = load("redrive")
# Jobs per batch: without a rate, as many as one statement replays quickly; with one, a quarter
# second's worth, so the rate is kept smoothly by batches that each stay small.
MAX_BATCH = 1000
BATCH_SPAN_S = 0.25


def batch_size(rate_per_s: float | None) -> int:
    if rate_per_s is None:
        return MAX_BATCH
    return max(1, min(MAX_BATCH, math.ceil(rate_per_s * BATCH_SPAN_S)))


def public_redrive(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "state": row["state"],
        "total": row["total"],
        "done": row["done"],
        "replayed": row["replayed"],
        "filter": row["filter"],
        "target_queue": row["target_queue"],
        "payload_patch": row["payload_patch"],
        "rate_per_second": row["rate_per_s"],
        "error": row["error"],
        "actor": row["actor"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "finished_at": row["finished_at"],
    }


class RedriveStore:
    def __init__(self, db: Database, jobs: JobStore) -> None:
        self.db = db
        self.jobs = jobs

    async def create(
        self,
        selection: DeadSelection,
        target_queue: str | None,
        payload_patch: Any,
        rate_per_s: float | None,
        actor: str,
    ) -> dict[str, Any]:
        """Freeze the chosen dead jobs into a new redrive, all in one transaction."""
        args = {
            "filter": {**selection.filter(), **({"ids": [str(i) for i in selection.ids]} if selection.ids else {})},
            "target_queue": target_queue,
            "payload_patch": payload_patch,
            "rate_per_s": rate_per_s,
            "actor": actor,
        }
        async with self.db.transaction() as conn:
            redrive_id = await conn.fetchval(Q["redrive_create"].sql, *Q["redrive_create"].args(args))
            total = await self.jobs.freeze_dead(conn, redrive_id, selection)
            q = Q["redrive_set_total"]
            row = await conn.fetchrow(q.sql, *q.args({"id": redrive_id, "total": total}))
        return public_redrive(row)

    async def get(self, redrive_id: int) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["redrive_get"].sql, redrive_id)
        if row is None:
            raise RedriveNotFound(f"no redrive with id {redrive_id}")
        return public_redrive(row)

    async def cancel(self, redrive_id: int) -> tuple[dict[str, Any], bool]:
        """The redrive, and whether this call cancelled it (false when it had already ended)."""
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["redrive_cancel"].sql, redrive_id)
        if row is not None:
            return public_redrive(row), True
        return await self.get(redrive_id), False

    async def step(self) -> tuple[dict[str, Any], dict[str, int]] | None:
        """Run one due batch of one running redrive, if any: the redrive after it, and the jobs
        replayed per queue. A batch that fails marks its redrive failed."""
        async with self.db.connection() as conn, conn.transaction():
            claimed = await conn.fetchrow(Q["redrive_claim"].sql)
            if claimed is None:
                return None
            redrive_id, rate = claimed["id"], claimed["rate_per_s"]
            try:
                async with conn.transaction():
                    q = Q["redrive_step"]
                    row = await conn.fetchrow(q.sql, *q.args({"id": redrive_id, "batch": batch_size(rate)}))
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.PostgresConnectionError):
                    raise
                q = Q["redrive_fail"]
                await conn.execute(q.sql, *q.args({"id": redrive_id, "error": f"{type(exc).__name__}: {exc}"}))
                return await self._failed(conn, redrive_id), {}
        return public_redrive(row), dict(zip(row["moved_queues"], row["moved_counts"], strict=True))

    async def _failed(self, conn: asyncpg.Connection, redrive_id: int) -> dict[str, Any]:
        return public_redrive(await conn.fetchrow(Q["redrive_get"].sql, redrive_id))
