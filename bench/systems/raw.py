"""The raw-SQL ceiling: the broker's own named statements issued directly with asyncpg, no HTTP.

Each worker or producer holds one connection, as many as the HTTP scenario has clients.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import orjson

from bench.common import JOB_TYPE, QUEUE, Flow, Window, payload, result, run_until, split, steady_result
from jobbroker.settings import JobDefaults, LeaseSettings
from jobbroker.store.db import LEASE_SESSION, SESSION
from jobbroker.store.db import connect as connect_one
from jobbroker.store.queries import load

Q = load("job")
DEFAULTS = JobDefaults()


def enqueue_args(payloads: list[Any]) -> list[Any]:
    """job_enqueue's binds for a batch of plain jobs, as JobStore.enqueue builds them."""
    n = len(payloads)
    nones: list[Any] = [None] * n
    values = {
        "queue": QUEUE,
        "types": [JOB_TYPE] * n,
        "payloads": [orjson.dumps(p).decode() for p in payloads],
        "priorities": [0] * n,
        "run_ats": nones,
        "delays_s": nones,
        "max_attempts": nones,
        "backoff_initial_s": nones,
        "backoff_max_s": nones,
        "backoff_multiplier": nones,
        "backoff_jitter": nones,
        "timeouts_s": nones,
        "idempotency_keys": nones,
        "correlation_ids": nones,
        "tags": ["[]"] * n,
        "flow_keys": nones,
        "heartbeat_timeouts_s": nones,
        "max_runtimes_s": nones,
        "trace_contexts": nones,
        "default_max_attempts": DEFAULTS.max_attempts,
        "default_backoff_initial_s": DEFAULTS.backoff_initial_s,
        "default_backoff_max_s": DEFAULTS.backoff_max_s,
        "default_backoff_multiplier": DEFAULTS.backoff_multiplier,
        "default_backoff_jitter": DEFAULTS.backoff_jitter,
        "default_timeout_s": LeaseSettings().default_visibility_timeout_s,
    }
    return Q["job_enqueue"].args(values)


async def connect(dsn: str, n: int, session: dict[str, str] = SESSION) -> list[asyncpg.Connection]:
    """Connections with the broker's own jsonb codec and session settings (workers: its lease sessions')."""
    return list(await asyncio.gather(*(connect_one(dsn, session) for _ in range(n))))


async def prefill(dsn: str, count: int) -> None:
    [conn] = await connect(dsn, 1)
    for start in range(0, count, 1000):
        await conn.fetch(
            Q["job_enqueue"].sql, *enqueue_args([payload(i) for i in range(start, min(count, start + 1000))])
        )
    await conn.close()


def _lease_args(worker_id: str, max_jobs: int) -> list[Any]:
    q = Q["job_lease"]
    values = {"queue": QUEUE, "worker_id": worker_id, "max_jobs": max_jobs, "visibility_timeout_s": None, "types": None}
    # The plain (unlimited-queue) path, whatever optional binds the statement grew.
    values.update({"limits_checked": False})
    return q.args({k: v for k, v in values.items() if k in q.params})


async def _ack_many(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    args = {"ids": [r["id"] for r in rows], "lease_ids": [r["lease_id"] for r in rows], "results": [None] * len(rows)}
    args["ledger"] = DEFAULTS.attempt_ledger  # the attempts ledger row, as the broker writes it
    done = await conn.fetch(Q["job_ack_many"].sql, *Q["job_ack_many"].args(args))
    if len(done) != len(rows):
        raise RuntimeError("raw ack_many acked fewer jobs than it leased")


async def enqueue(p: dict[str, Any], window: Window) -> dict[str, Any]:
    conns = await connect(p["dsn"], p["connections"])
    size = p["batch"]
    sql = Q["job_enqueue"].sql

    async def producer(conn: asyncpg.Connection, count: int) -> None:
        for start in range(0, count, size):
            await conn.fetch(sql, *enqueue_args([payload(start + k) for k in range(min(size, count - start))]))

    await window.start()
    await asyncio.gather(*(producer(c, n) for c, n in zip(conns, split(p["jobs"], len(conns)), strict=True)))
    await window.stop()
    await _close(conns)
    return result(window, p["jobs"])


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    conns = await connect(p["dsn"], p["workers"], LEASE_SESSION)
    acked = 0

    async def worker(conn: asyncpg.Connection, n: int) -> None:
        nonlocal acked
        args = _lease_args(f"w{n}", p["batch"])
        while rows := await conn.fetch(Q["job_lease"].sql, *args):
            await _ack_many(conn, rows)
            acked += len(rows)

    await window.start()
    await asyncio.gather(*(worker(c, n) for n, c in enumerate(conns)))
    await window.stop()
    await _close(conns)
    return result(window, acked, expected=p["jobs"])


async def unbatched(p: dict[str, Any], window: Window) -> dict[str, Any]:
    conns = await connect(p["dsn"], p["workers"], LEASE_SESSION)
    acked = 0
    ack = Q["job_ack"]

    async def worker(conn: asyncpg.Connection, n: int) -> None:
        nonlocal acked
        args = _lease_args(f"w{n}", 1)
        while rows := await conn.fetch(Q["job_lease"].sql, *args):
            row = rows[0]
            values = {"id": row["id"], "lease_id": row["lease_id"], "result": None, "http_status": None}
            if await conn.fetchrow(ack.sql, *ack.args({**values, "ledger": DEFAULTS.attempt_ledger})):
                acked += 1

    await window.start()
    await asyncio.gather(*(worker(c, n) for n, c in enumerate(conns)))
    await window.stop()
    await _close(conns)
    return result(window, acked, expected=p["jobs"])


async def steady(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """As the HTTP steady state; an empty lease polls again after 2 ms (no LISTEN here)."""
    producers = await connect(p["dsn"], p["producers"])
    workers = await connect(p["dsn"], p["workers"], LEASE_SESSION)
    size = p["batch"]
    await window.start()
    flow = Flow(p["duration_s"])

    async def producer(conn: asyncpg.Connection) -> None:
        i = 0
        while True:
            await flow.wait_for_room(size)
            t = time.perf_counter()
            await conn.fetch(Q["job_enqueue"].sql, *enqueue_args([{**payload(i + k), "t": t} for k in range(size)]))
            i += size

    async def worker(conn: asyncpg.Connection, n: int) -> None:
        args = _lease_args(f"w{n}", size)
        while True:
            rows = await conn.fetch(Q["job_lease"].sql, *args)
            if not rows:
                await asyncio.sleep(0.002)
                continue
            await _ack_many(conn, rows)
            flow.done([_sent_at(r) for r in rows])

    tasks = [asyncio.create_task(producer(c)) for c in producers]
    tasks += [asyncio.create_task(worker(c, n)) for n, c in enumerate(workers)]
    await run_until(tasks, flow)
    await window.stop()
    await _close(producers + workers)
    return steady_result(window, flow)


def _sent_at(row: asyncpg.Record) -> float:
    """The producer's timestamp in a leased job's payload, which the broker's codec reads as raw
    JSON text (an orjson.Fragment, never decoded on the broker's path)."""
    return orjson.loads(orjson.dumps(row["payload"]))["t"]


async def _close(conns: list[asyncpg.Connection]) -> None:
    await asyncio.gather(*(c.close(timeout=2) for c in conns), return_exceptions=True)
