"""Statistics read for the metrics gauges: one named query in sql/stats.sql."""

from __future__ import annotations

from typing import Any

from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("stats")
KEYS = "keys"


class StatsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def queue_depth(self) -> list[dict[str, Any]]:
        """Rows of queue, state, jobs, ready, oldest_ready_age_s (seconds, as a float), and for dead jobs
        dlq_groups and dlq_largest_group; rows of state `keys` add keys_ready, keys_at_limit and
        keys_paused."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(Q["stats_queue_depth"].sql)
            keys = await conn.fetch(Q["stats_queue_keys"].sql)
        depth = [
            {
                "queue": r["queue"],
                "state": r["state"],
                "jobs": r["jobs"],
                "ready": r["ready"],
                "oldest_ready_age_s": float(r["oldest_ready_age_s"]),
                "dlq_groups": r["dlq_groups"],
                "dlq_largest_group": r["dlq_largest_group"],
            }
            for r in rows
        ]
        # Flow keys ride along as rows of the pseudo state "keys" (no jobs of their own).
        return depth + [
            {
                "queue": r["queue"],
                "state": KEYS,
                "jobs": 0,
                "ready": 0,
                "oldest_ready_age_s": 0.0,
                "keys_ready": r["keys_ready"],
                "keys_at_limit": r["keys_at_limit"],
                "keys_paused": r["keys_paused"],
            }
            for r in keys
        ]
