"""jobbroker over HTTP, driven the way a polyglot client would drive it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import JOB_TYPE, QUEUE, Flow, Window, payload, percentiles, result, run_until, split, steady_result
from bench.httpclient import Connection, connect_many

JOBS = f"/v1/queues/{QUEUE}/jobs"
LEASES = f"/v1/queues/{QUEUE}/leases"


def _job(i: int, t: float | None = None) -> dict[str, Any]:
    return {"type": JOB_TYPE, "payload": payload(i) if t is None else {**payload(i), "t": t}}


async def enqueue(p: dict[str, Any], window: Window) -> dict[str, Any]:
    conns = await connect_many(p["url"], p["connections"])
    size = p["batch"]

    async def producer(conn: Connection, count: int) -> None:
        for start in range(0, count, size):
            n = min(size, count - start)
            if size == 1:
                await conn.post(JOBS, _job(start), expect=(201,))
            else:
                await conn.post(f"{JOBS}:batch", {"jobs": [_job(start + k) for k in range(n)]}, expect=(201,))

    await window.start()
    await asyncio.gather(*(producer(c, n) for c, n in zip(conns, split(p["jobs"], len(conns)), strict=True)))
    await window.stop()
    _close(conns)
    return result(window, p["jobs"])


async def drain(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """K workers lease `batch` at a time and ack each lease's jobs in one POST /v1/acks, until the
    queue is empty or `limit` jobs are acked (a backlog's first jobs). Latency: each lease request."""
    conns = await connect_many(p["url"], p["workers"])
    acked = 0
    limit = p.get("limit") or float("inf")
    leases: list[float] = []

    async def worker(conn: Connection, n: int) -> None:
        nonlocal acked
        while acked < limit:
            t = time.perf_counter()
            jobs = await _lease(conn, f"w{n}", p["batch"], 0)
            leases.append(time.perf_counter() - t)
            if not jobs:
                return
            await _ack_many(conn, jobs)
            acked += len(jobs)

    await window.start()
    await asyncio.gather(*(worker(c, n) for n, c in enumerate(conns)))
    await window.stop()
    _close(conns)
    return result(window, acked, expected=p.get("limit") or p["jobs"], latency=percentiles(leases))


async def empty_leases(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """One worker leasing from a queue with nothing ready, `leases` times in a row (no waiting):
    what polling an idle queue costs. The figure per second counts leases, not jobs."""
    [conn] = await connect_many(p["url"], 1)
    took: list[float] = []
    await window.start()
    for _ in range(p["leases"]):
        t = time.perf_counter()
        if await _lease(conn, "idle", p["batch"], 0):
            raise RuntimeError("a job was ready in the queue meant to have none")
        took.append(time.perf_counter() - t)
    await window.stop()
    _close([conn])
    return result(window, p["leases"], latency=percentiles(took))


async def unbatched(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """The naive worker: lease one job, ack it alone, repeat."""
    conns = await connect_many(p["url"], p["workers"])
    acked = 0

    async def worker(conn: Connection, n: int) -> None:
        nonlocal acked
        while True:
            jobs = await _lease(conn, f"w{n}", 1, 0)
            if not jobs:
                return
            job = jobs[0]
            await conn.post(f"/v1/jobs/{job['id']}/ack", {"lease_id": job["lease_id"]}, expect=(200,))
            acked += 1

    await window.start()
    await asyncio.gather(*(worker(c, n) for n, c in enumerate(conns)))
    await window.stop()
    _close(conns)
    return result(window, acked, expected=p["jobs"])


async def steady(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """Producers enqueue batches while workers long-poll, lease batches and batch-ack."""
    producers = await connect_many(p["url"], p["producers"])
    workers = await connect_many(p["url"], p["workers"])
    size = p["batch"]
    await window.start()
    flow = Flow(p["duration_s"])

    async def producer(conn: Connection) -> None:
        i = 0
        while True:
            await flow.wait_for_room(size)
            t = time.perf_counter()
            await conn.post(f"{JOBS}:batch", {"jobs": [_job(i + k, t) for k in range(size)]}, expect=(201,))
            i += size

    async def worker(conn: Connection, n: int) -> None:
        while True:
            jobs = await _lease(conn, f"w{n}", size, 1)
            if jobs:
                await _ack_many(conn, jobs)
                flow.done([j["payload"]["t"] for j in jobs])

    tasks = [asyncio.create_task(producer(c)) for c in producers]
    tasks += [asyncio.create_task(worker(c, n)) for n, c in enumerate(workers)]
    await run_until(tasks, flow)
    await window.stop()
    _close(producers + workers)
    return steady_result(window, flow, **p.get("report", {}))


async def wake(p: dict[str, Any], window: Window) -> dict[str, Any]:
    """An idle worker long-polls; single jobs arrive `gap_ms` apart; enqueue-sent to lease-received."""
    [producer, worker] = await connect_many(p["url"], 2)
    sent: dict[int, float] = {}
    latencies: list[float] = []

    async def consume() -> None:
        while len(latencies) < p["jobs"]:
            jobs = await _lease(worker, "waiter", 1, 10)
            now = time.perf_counter()
            for job in jobs:
                latencies.append(now - sent[job["payload"]["i"]])
                await worker.post(f"/v1/jobs/{job['id']}/ack", {"lease_id": job["lease_id"]}, expect=(200,))

    await window.start()
    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)  # the worker is parked in its long poll before the first job
    for i in range(p["jobs"]):
        sent[i] = time.perf_counter()
        await producer.post(JOBS, _job(i), expect=(201,))
        await asyncio.sleep(max(0.0, sent[i] + p["gap_ms"] / 1000 - time.perf_counter()))
    await asyncio.wait_for(consumer, 30)
    await window.stop()
    _close([producer, worker])
    return result(window, len(latencies), latency=percentiles(latencies))


async def _lease(conn: Connection, worker_id: str, max_jobs: int, wait_s: float) -> list[dict[str, Any]]:
    body = {"worker_id": worker_id, "max_jobs": max_jobs, "wait_seconds": wait_s}
    return (await conn.post(LEASES, body, expect=(200,)))["jobs"]


async def _ack_many(conn: Connection, jobs: list[dict[str, Any]]) -> None:
    answer = await conn.post("/v1/acks", {"items": [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]})
    refused = [r for r in answer["results"] if not r["ok"]]
    if refused:
        raise RuntimeError(f"acks refused: {refused[:3]}")


def _close(conns: list[Connection]) -> None:
    for c in conns:
        c.close()
