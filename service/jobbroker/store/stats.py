"""Statistics read for the metrics gauges: one named query in sql/stats.sql."""

from __future__ import annotations

from typing import Any

from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("stats")


class StatsStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def queue_depth(self) -> list[dict[str, Any]]:
        """Rows of queue, state, jobs, ready and oldest_ready_age_s (seconds, as a float)."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(Q["stats_queue_depth"].sql)
        return [
            {
                "queue": r["queue"],
                "state": r["state"],
                "jobs": r["jobs"],
                "ready": r["ready"],
                "oldest_ready_age_s": float(r["oldest_ready_age_s"]),
            }
            for r in rows
        ]
