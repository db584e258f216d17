"""Schedules: one method per named query in sql/schedule.sql."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from jobbroker.core.errors import ScheduleExists, ScheduleNotFound
from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("schedule")
Schedule = dict[str, Any]
# API field name -> column.
COLUMNS = {
    "name": "name",
    "cron": "cron",
    "timezone": "timezone",
    "queue": "queue",
    "type": "type",
    "payload": "payload",
    "priority": "priority",
    "max_attempts": "max_attempts",
    "timeout_seconds": "timeout_s",
    "paused": "paused",
    "next_run_at": "next_run_at",
}


def public_schedule(row: asyncpg.Record) -> Schedule:
    return {
        **{field: row[column] for field, column in COLUMNS.items()},
        "last_run_at": row["last_run_at"],
        "last_job_id": None if row["last_job_id"] is None else str(row["last_job_id"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _args(schedule: Schedule) -> dict[str, Any]:
    return {column: schedule[field] for field, column in COLUMNS.items()}


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, schedule: Schedule) -> Schedule:
        q = Q["schedule_create"]
        async with self.db.connection() as conn:
            row = await conn.fetchrow(q.sql, *q.args(_args(schedule)))
        if row is None:
            raise ScheduleExists(f"a schedule named {schedule['name']!r} exists; PATCH it instead")
        return public_schedule(row)

    async def get(self, name: str) -> Schedule:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["schedule_get"].sql, name)
        if row is None:
            raise ScheduleNotFound(f"no schedule named {name!r}")
        return public_schedule(row)

    async def list(self) -> list[Schedule]:
        async with self.db.connection() as conn:
            return [public_schedule(r) for r in await conn.fetch(Q["schedule_list"].sql)]

    async def update(self, schedule: Schedule) -> Schedule:
        q = Q["schedule_update"]
        async with self.db.connection() as conn:
            row = await conn.fetchrow(q.sql, *q.args(_args(schedule)))
        if row is None:
            raise ScheduleNotFound(f"no schedule named {schedule['name']!r}")
        return public_schedule(row)

    async def delete(self, name: str) -> None:
        async with self.db.connection() as conn:
            if await conn.fetchval(Q["schedule_delete"].sql, name) is None:
                raise ScheduleNotFound(f"no schedule named {name!r}")

    async def due(self, limit: int) -> list[Schedule]:
        async with self.db.connection() as conn:
            return [public_schedule(r) for r in await conn.fetch(Q["schedule_due"].sql, limit)]

    async def advance(self, name: str, fired_at: datetime, next_run_at: datetime, job_id: int | None) -> bool:
        """Whether this call moved the schedule on (false: another replica already did)."""
        q = Q["schedule_advance"]
        args = {"name": name, "fired_at": fired_at, "next_run_at": next_run_at, "job_id": job_id}
        async with self.db.connection() as conn:
            return await conn.execute(q.sql, *q.args(args)) == "UPDATE 1"

    async def postpone(self, name: str, fired_at: datetime, next_run_at: datetime) -> bool:
        """Move a failed fire on without recording a run; false when another replica moved it first."""
        q = Q["schedule_postpone"]
        args = {"name": name, "fired_at": fired_at, "next_run_at": next_run_at}
        async with self.db.connection() as conn:
            return await conn.execute(q.sql, *q.args(args)) == "UPDATE 1"
