"""An enqueue wakes at most as many long polls as jobs it made ready, within milliseconds, against a
real server with hundreds of long polls on one queue; jobs made ready without a count (a replay)
reach every waiter without the fallback poll."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from support import BrokerProcess

WAITERS = 500
WAIT_S = 20


@pytest.fixture(scope="module")
async def broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    # A fallback poll far beyond each test's time: only notifications wake a long poll here.
    process = BrokerProcess(
        await fresh_database(), JOBBROKER_LEASE__FALLBACK_POLL_S="60", JOBBROKER_LOG_LEVEL="warning"
    )
    await asyncio.to_thread(process.start)
    yield process
    await asyncio.to_thread(process.stop)


@pytest.fixture
async def client(broker: BrokerProcess) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=WAITERS + 20, max_keepalive_connections=WAITERS + 20)
    async with httpx.AsyncClient(base_url=broker.url, timeout=WAIT_S + 10, limits=limits) as client:
        yield client


async def woken(client: httpx.AsyncClient, queue: str) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(rf'^jobbroker_long_poll_wakeups_total\{{queue="{re.escape(queue)}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def long_polls(client: httpx.AsyncClient, queue: str, n: int) -> list[asyncio.Task[httpx.Response]]:
    body = {"worker_id": "w", "max_jobs": 1, "wait_seconds": WAIT_S}
    tasks = [asyncio.create_task(client.post(f"/v1/queues/{queue}/leases", json=body)) for _ in range(n)]
    # Every long poll has made its first look (and waits in line) once a later request is answered.
    await asyncio.sleep(1.0)
    assert (await client.post(f"/v1/queues/{queue}-probe/leases", json={"worker_id": "p"})).status_code == 200
    await asyncio.sleep(0.5)
    assert not any(t.done() for t in tasks)
    return tasks


async def answered(tasks: list[asyncio.Task[httpx.Response]], n: int, within_s: float) -> list[float]:
    """Wait until `n` long polls answered with a job; the seconds each took from now."""
    started = time.monotonic()
    times: list[float] = []
    pending = {t for t in tasks if not t.done()}
    while len(times) < n and time.monotonic() - started < within_s:
        done, pending = await asyncio.wait(pending, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            assert len(task.result().json()["jobs"]) == 1
            times.append(time.monotonic() - started)
    return times


async def cancel(tasks: list[asyncio.Task[httpx.Response]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_one_enqueue_wakes_one_of_hundreds_of_long_polls(client: httpx.AsyncClient) -> None:
    queue = f"herd-{uuid.uuid4().hex[:8]}"
    tasks = await long_polls(client, queue, WAITERS)
    try:
        before = await woken(client, queue)
        started = time.monotonic()
        assert (await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})).status_code == 201
        [latency] = await answered(tasks, 1, within_s=5)
        wake = time.monotonic() - started
        await asyncio.sleep(0.5)
        one = await woken(client, queue) - before
        assert sum(t.done() for t in tasks) == 1
        batch = await client.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": [{"type": "t"}] * 5})
        assert batch.status_code == 201
        await answered(tasks, 5, within_s=5)
        await asyncio.sleep(0.5)
        five = await woken(client, queue) - before - one
        print(
            f"\n{WAITERS} long polls on one queue: 1 enqueue woke {one:.0f}, its job leased {latency * 1000:.0f} ms"
            f" after the enqueue answered ({wake * 1000:.0f} ms after it was sent); a 5-job batch woke {five:.0f}"
        )
        assert one == 1
        assert five <= 5
        assert sum(t.done() for t in tasks) == 6
    finally:
        await cancel(tasks)


async def test_jobs_made_ready_without_a_count_still_reach_every_waiter(client: httpx.AsyncClient) -> None:
    """A bulk replay (the update trigger names the queue alone) wakes one long poll; each one that
    takes a full batch passes a wake-up on, so every replayed job is leased long before the fallback
    poll (60 s here), and no more long polls are woken than jobs plus one."""
    queue = f"replay-{uuid.uuid4().hex[:8]}"
    jobs = 20
    await client.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": [{"type": "t", "max_attempts": 1}] * jobs})
    leased = (await client.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "max_jobs": jobs})).json()
    for job in leased["jobs"]:
        nack = {"lease_id": job["lease_id"], "error": {"message": "x"}, "retryable": False}
        assert (await client.post(f"/v1/jobs/{job['id']}/nack", json=nack)).json()["state"] == "dead"
    tasks = await long_polls(client, queue, 50)
    try:
        before = await woken(client, queue)
        replay = await client.post("/v1/dlq/replay", json={"queue": queue})
        assert replay.status_code == 200, replay.text
        times = await answered(tasks, jobs, within_s=10)
        assert len(times) == jobs, f"only {len(times)} of {jobs} replayed jobs were leased"
        await asyncio.sleep(0.5)
        count = await woken(client, queue) - before
        print(
            f"\n50 long polls, a replay of {jobs} jobs: all leased within {max(times) * 1000:.0f} ms, {count:.0f} woken"
        )
        assert count <= jobs + 1
    finally:
        await cancel(tasks)
