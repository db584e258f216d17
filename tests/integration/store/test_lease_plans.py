"""Statements keep good plans however far the job table's size and statistics are from the truth.

The case every queue meets: the table was analyzed while it held only finished jobs, then a
backlog built up. Planned from those statistics, a lease reads and sorts the whole backlog to take
one job; on a lease connection it reads the ready index in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from jobbroker.settings import DbSettings
from jobbroker.store.db import Database
from jobbroker.store.queries import load

Q = load("job")
QUEUE = "plans"


@pytest.fixture
async def stale_database(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[Database]:
    db = Database(await fresh_database(), DbSettings(pool_min_size=0))
    await db.open()
    async with db.connection() as conn:
        await conn.execute("ALTER TABLE job SET (autovacuum_enabled = false)")
        await _insert(conn, 100_000)
        await conn.execute("UPDATE job SET state = 'succeeded', finished_at = now()")
        await conn.execute("ANALYZE job")  # statistics: no job is ready
        await _insert(conn, 10_000)  # the backlog the statistics do not know of
    yield db
    await db.close()


async def _insert(conn: asyncpg.Connection, n: int) -> None:
    await conn.execute(
        "INSERT INTO job (queue, type, payload, max_attempts, backoff_initial_s, backoff_max_s,"
        " backoff_multiplier, backoff_jitter, timeout_s)"
        " SELECT $1, 't', '{}', 3, 1, 60, 2, 0.1, 30 FROM generate_series(1, $2)",
        QUEUE,
        n,
    )


async def _plan_after_warm_up(conn: asyncpg.Connection) -> str:
    """The plan of job_lease once the prepared statement has run often enough for a generic plan."""
    q = Q["job_lease"]
    values = {
        "queue": f"'{QUEUE}'",
        "types": "NULL",
        "limits_checked": "false",
        "max_jobs": "1",
        "visibility_timeout_s": "NULL",
        "worker_id": "'w'",
    }
    execute = f"EXECUTE lease_probe({', '.join(values[name] for name in q.params)})"
    await conn.execute(f"PREPARE lease_probe AS {q.sql}")
    for _ in range(6):
        run = conn.transaction()
        await run.start()
        await conn.execute(execute)
        await run.rollback()  # the backlog stays ready
    plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {execute}"))
    await conn.execute("DEALLOCATE lease_probe")
    return plan


async def test_a_lease_reads_the_ready_index_in_order_whatever_the_statistics(stale_database: Database) -> None:
    async with stale_database.connection() as conn:
        cached = await _plan_after_warm_up(conn)
    async with stale_database.lease_connection() as conn:
        per_call = await _plan_after_warm_up(conn)
    # The hazard is real here: in an ordinary session the lease sorts the backlog.
    assert "Sort" in cached, cached
    assert "Sort" not in per_call and "Index Scan using job_ready" in per_call, per_call


async def test_no_session_compiles_statements(stale_database: Database) -> None:
    """JIT compiles any statement estimated to cost enough, at 50-400 ms of CPU a time; a lease
    session's disabled sort alone makes a lease's estimate pass that mark."""
    for acquire in (stale_database.connection, stale_database.lease_connection):
        async with acquire() as conn:
            assert await conn.fetchval("SHOW jit") == "off"
    q = Q["job_lease_each"]
    args = {"queue": QUEUE, "types": None, "visibility_timeout_s": None, "worker_ids": ["w"], "max_jobs": [1]}
    args["total"] = 1
    async with stale_database.lease_connection() as conn, conn.transaction():
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN (ANALYZE) {q.sql}", *q.args(args)))
    assert "JIT" not in plan and "Index Scan using job_ready" in plan, plan


async def test_statements_are_planned_for_the_table_as_it_is_now(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """The reaper, prepared while the table was empty (and analyzed so) and run on it often enough
    for a cached generic plan, then run on 20,000 jobs: no sequential scan of the job table."""
    db = Database(await fresh_database(), DbSettings(pool_min_size=0))
    await db.open()
    q = Q["job_expire_leases"]
    values = {"limit": "1000", "keep_errors": "20", "ledger": "true"}
    execute = f"EXECUTE reap_probe({', '.join(values[n] for n in q.params)})"
    plans = []
    try:
        async with db.connection() as ours, db.connection() as other:
            await other.execute("SET plan_cache_mode = auto")  # what a session without ours would do
            await ours.execute("ANALYZE job")
            for conn in (ours, other):
                await conn.execute(f"PREPARE reap_probe AS {q.sql}")
                for _ in range(6):
                    await conn.execute(execute)
            await _insert(ours, 20_000)
            for conn in (ours, other):
                plans.append("\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {execute}")))
                await conn.execute("DEALLOCATE reap_probe")
    finally:
        await db.close()
    planned_now, cached = plans
    assert "Seq Scan on job" in cached, cached  # the hazard is real here
    assert "Seq Scan on job" not in planned_now, planned_now
