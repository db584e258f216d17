"""The vacuum step keeps the job table's dead row versions (and the ready index's dead entries) few."""

from __future__ import annotations

from typing import Any

import asyncpg

from jobbroker.core.models import NewJob
from jobbroker.maintenance.loops import vacuumer
from jobbroker.store.job import JobStore
from support import eventually


async def test_vacuum_step_reclaims_dead_rows_once_past_the_threshold(app: Any, pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE job, queue")
    store: JobStore = app.state.broker.jobs
    await store.enqueue("vacuum", [NewJob(type="t", payload={}) for _ in range(50)])
    for job in await store.lease("vacuum", "w", 50, None, None):
        await store.ack(int(job["id"]), job["lease_id"], None)

    async def counted() -> bool:
        return await store.dead_rows() >= 50

    await eventually(counted)
    assert await vacuumer(store, 10**9)() == 0
    assert await store.dead_rows() >= 50  # below the threshold: left to autovacuum
    await vacuumer(store, 50)()

    async def reclaimed() -> bool:
        return await store.dead_rows() < 50

    await eventually(reclaimed)
