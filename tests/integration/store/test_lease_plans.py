"""Statements keep good plans however far the job table's size and statistics are from the truth.

The case every queue meets: the table was analyzed while it held only finished jobs, then a
backlog built up. Planned from those statistics, a lease reads and sorts the whole backlog to take
one job; on a lease connection it reads the ready index in order.
"""

from __future__ import annotations

import json
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
    # The hazard is real here: in an ordinary session the lease sorts (read priority by priority, it
    # reads job_scheduled in run_at order and sorts each run_at's jobs by id, an incremental sort).
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


async def _insert_at(conn: asyncpg.Connection, queue: str, n: int, priority: int, delay_s: float) -> None:
    await conn.execute(
        "INSERT INTO job (queue, type, payload, priority, run_at, max_attempts, backoff_initial_s, backoff_max_s,"
        " backoff_multiplier, backoff_jitter, timeout_s)"
        " SELECT $1, 't', '{}', $3, now() + make_interval(secs => $4) + g * interval '1 ms', 3, 1, 60, 2, 0.1, 30"
        " FROM generate_series(1, $2) g",
        queue,
        n,
        priority,
        delay_s,
    )


async def _buffers(conn: asyncpg.Connection, name: str, args: dict) -> int:
    """Shared buffers a statement touched (EXPLAIN ANALYZE, rolled back)."""
    q = Q[name]
    run = conn.transaction()
    await run.start()
    try:
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {q.sql}", *q.args(args))
    finally:
        await run.rollback()
    top = json.loads(plan)[0]["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"]


async def test_delayed_jobs_cost_a_lease_nothing(fresh_database: Callable[[], Awaitable[str]]) -> None:
    """Delayed jobs sit in job_ready after the ready jobs of their priority. A lease (plain or
    coalesced) and the next-due look-up read as much with 2,000 of them as with 22,000, whether the
    queue has ready jobs of a later priority behind them or none at all."""
    db = Database(await fresh_database(), DbSettings(pool_min_size=0))
    await db.open()
    lease = {"queue": "d", "types": None, "limits_checked": False, "max_jobs": 10}
    lease |= {"visibility_timeout_s": None, "worker_id": "w"}
    each = {"queue": "d", "types": None, "visibility_timeout_s": None, "worker_ids": ["a", "b"], "max_jobs": [5, 5]}
    each["total"] = 10
    empty = {**lease, "queue": "e"}
    reads: list[tuple[int, ...]] = []
    try:
        async with db.connection() as conn:
            await conn.execute("ALTER TABLE job SET (autovacuum_enabled = false)")
            await _insert_at(conn, "d", 50, 5, 0)  # ready, behind the delayed ones in the index
            await _insert_at(conn, "e", 1, 0, 7200)  # a queue whose only job is delayed
            for more in (2_000, 20_000):
                await _insert_at(conn, "d", more, 0, 3600)
                await _insert_at(conn, "e", more, 0, 3600)
                await conn.execute("VACUUM ANALYZE job")
                async with db.lease_connection() as lc:
                    reads.append(
                        (
                            await _buffers(lc, "job_lease", lease),
                            await _buffers(lc, "job_lease_each", each),
                            await _buffers(lc, "job_lease", empty),
                            await _buffers(conn, "job_next_run_at", {"queue": "d"}),
                        )
                    )
            async with db.lease_connection() as lc:
                taken = await lc.fetch(Q["job_lease"].sql, *Q["job_lease"].args(lease))
                assert await lc.fetch(Q["job_lease"].sql, *Q["job_lease"].args(empty)) == []
            assert [r["priority"] for r in taken] == [5] * 10
            due = await conn.fetchval(Q["job_next_run_at"].sql, "e")
            assert due == await conn.fetchval("SELECT min(run_at) FROM job WHERE queue = 'e'")
    finally:
        await db.close()
    small, big = reads
    for before, after in zip(small, big, strict=True):
        # The index grows a level (a buffer more per descent); walking the 20,000 new delayed jobs
        # would read over a hundred more.
        assert after <= before * 1.5 + 2, reads


async def test_only_lease_sessions_commit_without_waiting_for_the_flush(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    url = await fresh_database()
    for setting, lease_commit in (
        (DbSettings(pool_min_size=0), "off"),
        (DbSettings(lease_synchronous_commit="on"), "on"),
    ):
        db = Database(url, setting)
        await db.open()
        try:
            async with db.lease_connection() as conn:
                assert await conn.fetchval("SHOW synchronous_commit") == lease_commit
            async with db.connection() as conn:
                server_default = await conn.fetchval(
                    "SELECT boot_val FROM pg_settings WHERE name = 'synchronous_commit'"
                )
                assert (
                    await conn.fetchval("SELECT source FROM pg_settings WHERE name = 'synchronous_commit'") != "client"
                )
                assert server_default == "on"
        finally:
            await db.close()
