"""The minimal-statement ceiling: the smallest schema and statements that can do the job, over asyncpg.

One table with only the columns a queue needs, one partial index for ready jobs in lease order, and
three statements: an enqueue from unnest, a lease `UPDATE ... WHERE id IN (SELECT ... ORDER BY
priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED) RETURNING`, and an ack `UPDATE ... FROM
unnest(ids, lease_ids)`. No retries, no DLQ, no error history, no idempotency keys, no triggers,
no notifications: what the broker's statements cost beyond this is the price of its features.
It lives in its own schema (`minimal`) of the bench database, so it shares nothing with the broker's
table but the server. Sessions use the broker's session settings (plans made anew, no JIT; the
lease sessions never sort), and the steady state vacuums the table every 2 s as the broker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import orjson

from bench.common import JOB_TYPE, QUEUE, Flow, Window, payload, result, run_until, split, steady_result
from jobbroker.store.db import LEASE_SESSION, SESSION
from jobbroker.store.db import connect as connect_one

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS minimal;
CREATE TABLE IF NOT EXISTS minimal.job (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    priority integer NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    lease_id uuid,
    lease_expires_at timestamptz,
    result jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX IF NOT EXISTS job_ready ON minimal.job (queue, priority, run_at, id) WHERE state = 'pending';
"""
TABLES = ("minimal.job",)

ENQUEUE = """
INSERT INTO minimal.job (queue, type, payload)
SELECT $1, t.type, t.payload FROM unnest($2::text[], $3::jsonb[]) AS t(type, payload)
RETURNING id
"""
LEASE = """
UPDATE minimal.job
SET state = 'active', attempts = attempts + 1, lease_id = gen_random_uuid(),
    lease_expires_at = now() + interval '30 seconds'
WHERE id IN (
    SELECT id FROM minimal.job
    WHERE queue = $1 AND state = 'pending' AND run_at <= now()
    ORDER BY priority, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, type, payload, attempts, lease_id, lease_expires_at
"""
ACK = """
UPDATE minimal.job j
SET state = 'succeeded', result = i.result, lease_expires_at = NULL
FROM unnest($1::bigint[], $2::uuid[], $3::jsonb[]) AS i(id, lease_id, result)
WHERE j.id = i.id AND j.state = 'active' AND j.lease_id = i.lease_id
RETURNING j.id
"""
VACUUM_EVERY_S = 2.0


async def install(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()


async def connect(dsn: str, n: int, session: dict[str, str] = SESSION) -> list[asyncpg.Connection]:
    return list(await asyncio.gather(*(connect_one(dsn, session) for _ in range(n))))


async def _enqueue(conn: asyncpg.Connection, payloads: list[Any]) -> None:
    await conn.fetch(ENQUEUE, QUEUE, [JOB_TYPE] * len(payloads), payloads)


async def prefill(dsn: str, count: int) -> None:
    [conn] = await connect(dsn, 1)
    for start in range(0, count, 1000):
        await _enqueue(conn, [payload(i) for i in range(start, min(count, start + 1000))])
    await conn.close()


async def _ack(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    done = await conn.fetch(ACK, [r["id"] for r in rows], [r["lease_id"] for r in rows], [None] * len(rows))
    if len(done) != len(rows):
        raise RuntimeError("minimal ack acked fewer jobs than it leased")


async def enqueue(p: dict[str, Any], window: Window) -> dict[str, Any]:
    conns = await connect(p["dsn"], p["connections"])
    size = p["batch"]

    async def producer(conn: asyncpg.Connection, count: int) -> None:
        for start in range(0, count, size):
            await _enqueue(conn, [payload(start + k) for k in range(min(size, count - start))])

    await window.start()
    await asyncio.gather(*(producer(c, n) for c, n in zip(conns, split(p["jobs"], len(conns)), strict=True)))
    await window.stop()
    await _close(conns)
    return result(window, p["jobs"])


async def _drain(p: dict[str, Any], window: Window, batch: int) -> dict[str, Any]:
    conns = await connect(p["dsn"], p["workers"], LEASE_SESSION)
    acked = 0

    async def worker(conn: asyncpg.Connection) -> None:
        nonlocal acked
        while rows := await conn.fetch(LEASE, QUEUE, batch):
            await _ack(conn, rows)
            acked += len(rows)

    await window.start()
    await asyncio.gather(*(worker(c) for c in conns))
    await window.stop()
    await _close(conns)
    return result(window, acked, expected=p["jobs"])


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    return await _drain(p, window, p["batch"])


async def unbatched(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """Lease one, ack one: one statement and one commit per call, from each worker's connection."""
    return await _drain(p, window, 1)


async def steady(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """As the HTTP steady state; an empty lease polls again after 2 ms (no LISTEN here)."""
    producers = await connect(p["dsn"], p["producers"])
    workers = await connect(p["dsn"], p["workers"], LEASE_SESSION)
    [maintenance] = await connect(p["dsn"], 1)
    size = p["batch"]
    await window.start()
    flow = Flow(p["duration_s"])

    async def producer(conn: asyncpg.Connection) -> None:
        i = 0
        while True:
            await flow.wait_for_room(size)
            t = time.perf_counter()
            await _enqueue(conn, [{**payload(i + k), "t": t} for k in range(size)])
            i += size

    async def worker(conn: asyncpg.Connection) -> None:
        while True:
            rows = await conn.fetch(LEASE, QUEUE, size)
            if not rows:
                await asyncio.sleep(0.002)
                continue
            await _ack(conn, rows)
            flow.done([_sent_at(r) for r in rows])

    async def vacuum() -> None:
        while True:
            await asyncio.sleep(VACUUM_EVERY_S)
            with contextlib.suppress(asyncpg.PostgresError):
                await maintenance.execute("VACUUM (SKIP_LOCKED) minimal.job")

    tasks = [asyncio.create_task(producer(c)) for c in producers]
    tasks += [asyncio.create_task(worker(c)) for c in workers]
    tasks.append(asyncio.create_task(vacuum()))
    await run_until(tasks, flow)
    await window.stop()
    await _close([*producers, *workers, maintenance])
    return steady_result(window, flow)


def _sent_at(row: asyncpg.Record) -> float:
    """The producer's timestamp in a leased job's payload, which the broker's codec reads as raw
    JSON text (an orjson.Fragment, never decoded on the broker's path)."""
    return orjson.loads(orjson.dumps(row["payload"]))["t"]


async def _close(conns: list[asyncpg.Connection]) -> None:
    await asyncio.gather(*(c.close(timeout=2) for c in conns), return_exceptions=True)
