"""Per-key limits across two broker processes on one database, with eight concurrent leasers.

Its own database and brokers: the limits must hold through the database alone, which two
processes (each with its own cursor, caches and connections) share.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from support import BrokerProcess

KEYS = [f"tenant-{i}" for i in range(6)]
JOBS_PER_KEY = 15
LIMIT = 2


@pytest.mark.parametrize("fairness", ["round_robin", "fifo"])
async def test_per_key_concurrency_is_never_exceeded_by_eight_leasers_on_two_replicas(
    fresh_database: Callable[[], Awaitable[str]], fairness: str
) -> None:
    url = await fresh_database()
    brokers = [BrokerProcess(url) for _ in range(2)]
    for broker in brokers:  # one after the other: the first migrates the database
        await asyncio.to_thread(broker.start)
    held: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    done: list[str] = []
    try:
        clients = [httpx.AsyncClient(base_url=b.url, timeout=30) for b in brokers]
        flow = {"flow": {"max_concurrency_per_key": LIMIT, "fairness": fairness}}
        assert (await clients[0].patch("/v1/queues/q", json=flow)).status_code == 200
        jobs = [{"type": "t", "flow_key": k} for k in KEYS for _ in range(JOBS_PER_KEY)]
        random.Random(7).shuffle(jobs)
        assert (await clients[1].post("/v1/queues/q/jobs:batch", json={"jobs": jobs})).status_code == 201

        async def leaser(n: int) -> None:
            client = clients[n % 2]
            idle = 0
            while len(done) < len(jobs) and idle < 200:
                answer = await client.post("/v1/queues/q/leases", json={"worker_id": f"w{n}", "max_jobs": 3})
                leased: list[dict[str, Any]] = answer.json()["jobs"]
                if not leased:
                    idle += 1
                    await asyncio.sleep(0.01)
                    continue
                idle = 0
                for job in leased:
                    held[job["flow_key"]] += 1
                    peak[job["flow_key"]] = max(peak[job["flow_key"]], held[job["flow_key"]])
                await asyncio.sleep(random.uniform(0.005, 0.03))
                for job in leased:
                    # Counted as released before the ack is sent: the broker holds it at least as long.
                    held[job["flow_key"]] -= 1
                    acked = await client.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"]})
                    assert acked.status_code == 200, acked.text
                    done.append(job["id"])

        await asyncio.gather(*(leaser(n) for n in range(8)))
        for client in clients:
            await client.aclose()
    finally:
        for broker in brokers:
            broker.stop()
    assert len(done) == len(set(done)) == len(KEYS) * JOBS_PER_KEY
    assert max(peak.values()) == LIMIT, peak  # reached, never exceeded
