"""pgqueuer on the same database: list-form bulk `enqueue`, K QueueManagers dequeuing in batches.

Latency is taken when the no-op entrypoint runs; pgqueuer logs completion in buffered batches.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.models import Job
from pgqueuer.types import QueueExecutionMode

from bench.common import JOB_TYPE, Flow, Window, payload, result, run_until, split, steady_result


async def _queries(dsn: str) -> Queries:
    return Queries(AsyncpgDriver(await asyncpg.connect(dsn)))


async def install(dsn: str) -> None:
    q = await _queries(dsn)
    if not await q.has_table("pgqueuer"):
        await q.install()


def _bodies(start: int, n: int, t: float | None = None) -> list[bytes | None]:
    extra = {} if t is None else {"t": t}
    return [orjson.dumps({**payload(start + k), **extra}) for k in range(n)]


async def prefill(dsn: str, count: int) -> None:
    q = await _queries(dsn)
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        await q.enqueue([JOB_TYPE] * n, _bodies(start, n), [0] * n)


async def enqueue(p: dict[str, Any], window: Window) -> dict[str, Any]:
    queries = [await _queries(p["dsn"]) for _ in range(p["connections"])]
    size = p["batch"]

    async def producer(q: Queries, count: int) -> None:
        for start in range(0, count, size):
            n = min(size, count - start)
            if size == 1:
                await q.enqueue(JOB_TYPE, _bodies(start, 1)[0])
            else:
                await q.enqueue([JOB_TYPE] * n, _bodies(start, n), [0] * n)

    await window.start()
    await asyncio.gather(*(producer(q, n) for q, n in zip(queries, split(p["jobs"], len(queries)), strict=True)))
    await window.stop()
    return result(window, p["jobs"])


async def _managers(p: dict[str, Any], on_job: Any) -> list[QueueManager]:
    managers = []
    for _ in range(p["workers"]):
        qm = QueueManager(await _queries(p["dsn"]))
        qm.entrypoint(JOB_TYPE)(on_job)
        managers.append(qm)
    return managers


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    done = 0

    async def noop(job: Job) -> None:
        nonlocal done
        done += 1

    managers = await _managers(p, noop)
    await window.start()
    await asyncio.gather(*(qm.run(batch_size=p["batch"], mode=QueueExecutionMode.drain) for qm in managers))
    await window.stop()
    return result(window, done, expected=p["jobs"])


async def steady(p: dict[str, Any], window: Window) -> dict[str, Any]:
    flow: Flow | None = None

    async def noop(job: Job) -> None:
        assert flow is not None and job.payload is not None
        flow.done([orjson.loads(job.payload)["t"]])

    managers = await _managers(p, noop)
    producers = [await _queries(p["dsn"]) for _ in range(p["producers"])]
    size = p["batch"]
    await window.start()
    flow = Flow(p["duration_s"])

    async def producer(q: Queries) -> None:
        i = 0
        while True:
            await flow.wait_for_room(size)
            await q.enqueue([JOB_TYPE] * size, _bodies(i, size, time.perf_counter()), [0] * size)
            i += size

    runs = [asyncio.create_task(qm.run(batch_size=p["batch"], dequeue_timeout=timedelta(seconds=1))) for qm in managers]
    await run_until([asyncio.create_task(producer(q)) for q in producers], flow)
    for qm in managers:
        qm.shutdown.set()
    await asyncio.wait(runs, timeout=10)
    await window.stop()
    return steady_result(window, flow)
