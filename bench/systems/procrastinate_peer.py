"""procrastinate on the same database: bulk `batch_defer_async`, its async worker with concurrency.

Latency is taken when the no-op task runs; procrastinate records the job as finished right after.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import procrastinate

from bench.common import JOB_TYPE, QUEUE, Flow, Window, payload, result, run_until, split, steady_result

_flow: Flow | None = None
_count = 0


def make_app(dsn: str, pool_size: int) -> tuple[procrastinate.App, Any]:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=dsn, min_size=pool_size, max_size=pool_size)
    )

    @app.task(name=JOB_TYPE, queue=QUEUE)
    async def noop(**kwargs: Any) -> None:
        global _count
        _count += 1
        if _flow is not None and "t" in kwargs:
            _flow.done([kwargs["t"]])

    return app, noop


async def install(dsn: str) -> None:
    app, _ = make_app(dsn, 1)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def prefill(dsn: str, count: int) -> None:
    app, noop = make_app(dsn, 1)
    async with app.open_async():
        for start in range(0, count, 1000):
            await noop.batch_defer_async(*(payload(i) for i in range(start, min(count, start + 1000))))


def _worker_options(p: dict[str, Any], wait: bool) -> dict[str, Any]:
    return {
        "queues": [QUEUE],
        "concurrency": p["concurrency"],
        "wait": wait,
        "listen_notify": wait,
        "fetch_job_polling_interval": 0.01 if wait else 5.0,
        "install_signal_handlers": False,
    }


async def enqueue(p: dict[str, Any], window: Window) -> dict[str, Any]:
    app, noop = make_app(p["dsn"], p["connections"])
    size = p["batch"]

    async def producer(count: int) -> None:
        for start in range(0, count, size):
            if size == 1:
                await noop.defer_async(**payload(start))
            else:
                await noop.batch_defer_async(*(payload(start + k) for k in range(min(size, count - start))))

    async with app.open_async():
        await window.start()
        await asyncio.gather(*(producer(n) for n in split(p["jobs"], p["connections"])))
        await window.stop()
    return result(window, p["jobs"])


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    global _count
    app, _ = make_app(p["dsn"], p["concurrency"] + 2)
    _count = 0
    async with app.open_async():
        await window.start()
        await app.run_worker_async(**_worker_options(p, wait=False))
        await window.stop()
    return result(window, _count, expected=p["jobs"], concurrency=p["concurrency"])


async def steady(p: dict[str, Any], window: Window) -> dict[str, Any]:
    global _flow
    app, noop = make_app(p["dsn"], p["concurrency"] + p["producers"] + 2)
    size = p["batch"]
    async with app.open_async():
        await window.start()
        _flow = flow = Flow(p["duration_s"])

        async def producer() -> None:
            i = 0
            while True:
                await flow.wait_for_room(size)
                t = time.perf_counter()
                await noop.batch_defer_async(*({**payload(i + k), "t": t} for k in range(size)))
                i += size

        tasks = [asyncio.create_task(producer()) for _ in range(p["producers"])]
        tasks.append(asyncio.create_task(app.run_worker_async(**_worker_options(p, wait=True))))
        await run_until(tasks, flow)
        await window.stop()
        _flow = None
    return steady_result(window, flow, concurrency=p["concurrency"])
