"""Flow keys of a queue: their settings rows in queue_key, with ready and active counts."""

from __future__ import annotations

from typing import Any

import asyncpg

from jobbroker.store.db import Database
from jobbroker.store.queries import load
from jobbroker.store.queue import rate_limit

Q = load("queue_key")
SETTABLE = ("max_concurrency", "rate_limit", "paused", "paused_until")
QueueKey = dict[str, Any]


def public_key(row: asyncpg.Record) -> QueueKey:
    """The API's view of a key: its overrides (null: the queue's default), pause and counts."""
    paused_until = row["paused_until"]
    if paused_until is not None and paused_until <= row["now"]:
        paused_until = None
    return {
        "key": row["key"],
        "ready": row["ready"],
        "active": row["active"],
        "paused": row["paused"],
        "paused_until": paused_until,
        "max_concurrency": row["max_concurrency"],
        "rate_limit": rate_limit(row["rate_max"], row["rate_per_s"]),
    }


def unknown_key(key: str) -> QueueKey:
    """A key no job has carried and no operator has set: no overrides, nothing waiting."""
    return {
        "key": key,
        "ready": 0,
        "active": 0,
        "paused": False,
        "paused_until": None,
        "max_concurrency": None,
        "rate_limit": None,
    }


class QueueKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, queue: str, key: str) -> QueueKey:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["queue_key_get"].sql, *Q["queue_key_get"].args({"queue": queue, "key": key}))
        return unknown_key(key) if row is None else public_key(row)

    async def list(self, queue: str, after: str | None, limit: int) -> list[QueueKey]:
        q = Q["queue_key_list"]
        async with self.db.connection() as conn:
            rows = await conn.fetch(q.sql, *q.args({"queue": queue, "after": after, "limit": limit}))
        return [public_key(r) for r in rows]

    async def update(self, queue: str, key: str, changes: dict[str, Any]) -> None:
        """Apply the given settings (a key absent from `changes` stays as it was)."""
        rate = changes.get("rate_limit") or {}
        args = {
            "queue": queue,
            "key": key,
            "max_concurrency": changes.get("max_concurrency"),
            "rate_max": rate.get("max"),
            "rate_per_s": rate.get("per_seconds"),
            "paused": changes.get("paused"),
            "paused_until": changes.get("paused_until"),
            **{f"set_{name}": name in changes for name in SETTABLE},
        }
        async with self.db.connection() as conn:
            await conn.execute(Q["queue_key_upsert"].sql, *Q["queue_key_upsert"].args(args))

    async def pause_for(self, conn: asyncpg.Connection, pauses: list[tuple[str, str, float]]) -> None:
        """Hold each (queue, key) for its seconds, in the caller's transaction."""
        q = Q["queue_key_pause_for"]
        args = {"queues": [p[0] for p in pauses], "keys": [p[1] for p in pauses], "pauses_s": [p[2] for p in pauses]}
        await conn.execute(q.sql, *q.args(args))
