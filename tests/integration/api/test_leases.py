"""Leasing: ordering, scheduling, visibility, type filters, long-poll, limits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from support import Api


async def test_lease_hands_out_a_job_with_its_lease(api: Api) -> None:
    queued = await api.enqueue(payload={"n": 1})
    job = await api.lease_one(visibility_timeout_seconds=45)
    assert job["id"] == queued["id"] and job["state"] == "active"
    assert job["attempt"] == 1 and job["attempts"] == 1 and job["worker_id"] == "w1"
    assert len(job["lease_id"]) == 36
    remaining = datetime.fromisoformat(job["lease_expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=40) < remaining <= timedelta(seconds=45)


async def test_an_empty_queue_answers_no_jobs(api: Api) -> None:
    assert await api.lease() == []


async def test_priorities_order_leases_then_run_at_then_id(api: Api) -> None:
    low = await api.enqueue(priority=5)
    first_high = await api.enqueue(priority=-1)
    second_high = await api.enqueue(priority=-1)
    normal = await api.enqueue()
    leased = await api.lease(max_jobs=10)
    assert [j["id"] for j in leased] == [first_high["id"], second_high["id"], normal["id"], low["id"]]


async def test_delayed_jobs_are_not_leased_early(api: Api, pool: asyncpg.Pool) -> None:
    delayed = await api.enqueue(delay_seconds=30)
    assert await api.lease() == []
    await pool.execute("UPDATE job SET run_at = now() - interval '1 second' WHERE id = $1", int(delayed["id"]))
    assert (await api.lease_one())["id"] == delayed["id"]


async def test_a_leased_job_is_invisible_to_other_leases(api: Api) -> None:
    await api.enqueue()
    await api.lease_one()
    assert await api.lease() == []


async def test_type_filter_leases_only_those_types(api: Api) -> None:
    await api.enqueue(type="a")
    wanted = await api.enqueue(type="b")
    [job] = await api.lease(max_jobs=5, types=["b", "c"])
    assert job["id"] == wanted["id"]


async def test_max_jobs_bounds_the_batch(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 30})
    assert len(await api.lease(max_jobs=25)) == 25
    assert len(await api.lease(max_jobs=25)) == 5


async def test_visibility_timeout_defaults_to_the_jobs_timeout(api: Api) -> None:
    await api.enqueue(timeout_seconds=600)
    job = await api.lease_one()
    remaining = datetime.fromisoformat(job["lease_expires_at"]) - datetime.now(UTC)
    assert timedelta(seconds=590) < remaining <= timedelta(seconds=600)


async def test_long_poll_wakes_on_enqueue_long_before_its_deadline(api: Api) -> None:
    async def enqueue_later() -> dict:
        await asyncio.sleep(0.2)
        return await api.enqueue(payload={"late": True})

    started = time.monotonic()
    leased, queued = await asyncio.gather(api.lease(wait_seconds=10), enqueue_later())
    waited = time.monotonic() - started
    assert [j["id"] for j in leased] == [queued["id"]]
    assert waited < 5, f"the waiting lease took {waited:.2f}s: it was not woken by the enqueue"


async def test_long_poll_wakes_when_a_delayed_job_comes_due(api: Api) -> None:
    queued = await api.enqueue(delay_seconds=0.5)
    started = time.monotonic()
    [job] = await api.lease(wait_seconds=10)
    assert job["id"] == queued["id"]
    assert 0.4 < time.monotonic() - started < 5


async def test_long_poll_on_an_empty_queue_answers_empty_at_its_deadline(api: Api) -> None:
    started = time.monotonic()
    assert await api.lease(wait_seconds=0.5) == []
    assert time.monotonic() - started >= 0.45


async def test_a_paused_queue_leases_nothing_until_resumed(api: Api) -> None:
    await api.enqueue()
    assert (await api.c.patch("/v1/queues/q", json={"paused": True})).json()["paused"] is True
    assert await api.lease() == []
    await api.c.patch("/v1/queues/q", json={"paused": False})
    assert len(await api.lease()) == 1


async def test_max_concurrency_caps_active_jobs(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 10})
    await api.c.patch("/v1/queues/q", json={"max_concurrency": 3})
    first = await api.lease(max_jobs=10)
    assert len(first) == 3
    assert await api.lease(max_jobs=10) == []
    assert (await api.ack(first[0])).status_code == 200
    assert len(await api.lease(max_jobs=10)) == 1


async def test_concurrent_leases_under_max_concurrency_never_exceed_it(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 40})
    await api.c.patch("/v1/queues/q", json={"max_concurrency": 4})
    batches = await asyncio.gather(*(api.lease(max_jobs=3) for _ in range(10)))
    assert sum(len(b) for b in batches) == 4


async def test_rate_limit_grants_at_most_the_rate_per_second(api: Api) -> None:
    await api.c.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 50})
    await api.c.patch("/v1/queues/q", json={"rate_limit": 5})
    # The bucket starts full (one second's worth); the next second refills it.
    assert len(await api.lease(max_jobs=50)) == 5
    assert len(await api.lease(max_jobs=50)) == 0


async def test_concurrent_leases_never_share_a_job(client: httpx.AsyncClient, api: Api) -> None:
    await client.post("/v1/queues/q/jobs:batch", json={"jobs": [{"type": "t"}] * 200})
    batches = await asyncio.gather(*(api.lease(max_jobs=15) for _ in range(20)))
    ids = [j["id"] for batch in batches for j in batch]
    assert len(ids) == 200 and len(set(ids)) == 200
