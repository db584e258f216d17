"""Dispatchers of several replicas on one database, and the delivery-time address check.

These tests run their own brokers (processes, or an app with its own settings) on a fresh database:
they need dispatchers other than the shared in-process app's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from push_support import Received, enqueue, held_until, job_in, subscribe
from starlette.responses import JSONResponse, Response

from jobbroker.app import create_app
from jobbroker.settings import Settings
from jobbroker.store.db import plain_url
from support import BrokerProcess, eventually

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_max_concurrency_holds_across_two_broker_processes(fresh_database, receivers, queue_name: str) -> None:
    async def slow(_r: Received, _n: int) -> Response:
        await asyncio.sleep(0.2)
        return JSONResponse({})

    receiver = await receivers(slow)
    url = await fresh_database()
    # Both replicas poll often, so each keeps trying to take room the other frees.
    brokers = [BrokerProcess(url, JOBBROKER_PUSH__POLL_INTERVAL_S="0.02") for _ in range(2)]
    await asyncio.gather(*(asyncio.to_thread(b.start) for b in brokers))
    try:
        async with httpx.AsyncClient(base_url=brokers[0].url) as a, httpx.AsyncClient(base_url=brokers[1].url) as b:
            sub = await subscribe(a, queue_name, receiver.url, max_concurrency=3)
            batch = {"jobs": [{"type": "t"} for _ in range(20)]}
            assert (await b.post(f"/v1/queues/{queue_name}/jobs:batch", json=batch)).status_code == 201

            async def all_succeeded() -> bool:
                stats = (await a.get(f"/v1/queues/{queue_name}")).json()
                return stats["counts"]["succeeded"] == 20

            await eventually(all_succeeded, within_s=30)
            jobs = (await a.get("/v1/jobs", params={"queue": queue_name, "limit": 50})).json()["items"]
    finally:
        for broker in brokers:
            broker.stop()
    assert receiver.peak == 3  # reached, never exceeded
    assert len(receiver.requests) == 20
    assert {j["worker_id"] for j in jobs} == {f"push:{sub['id']}"} and {j["attempts"] for j in jobs} == {1}


@contextlib.asynccontextmanager
async def broker_app(database_url: str, **push: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url, push=push))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://broker") as c:
        yield c


async def test_delivery_refuses_an_address_the_policy_does_not_allow(fresh_database, receivers) -> None:
    receiver = await receivers()
    database_url = await fresh_database()
    hook = receiver.url.replace("127.0.0.1", "localhost")
    async with broker_app(database_url, allowed_networks=[], poll_interval_s=0.1) as client:
        refused = await client.post("/v1/subscriptions", json={"queue": "q", "url": hook})
        assert refused.status_code == 422 and refused.json()["code"] == "url_not_allowed"
        # As if saved under a looser policy, or the name resolved elsewhere when it was saved.
        conn = await asyncpg.connect(plain_url(database_url))
        try:
            await conn.execute(
                "INSERT INTO jobbroker.subscription (queue, url, secret, max_concurrency, timeout_s)"
                " VALUES ('q', $1, $2, 1, 5)",
                hook,
                SECRET,
            )
        finally:
            await conn.close()
        job = await enqueue(client, "q", max_attempts=1)
        dead = await job_in(client, job["id"], "dead")
    [entry] = dead["errors"]
    assert entry["error"]["type"] == "url_not_allowed" and "localhost" in entry["error"]["message"]
    assert receiver.requests == []


async def test_a_deployment_can_allow_its_own_network(fresh_database, receivers) -> None:
    receiver = await receivers()
    database_url = await fresh_database()
    async with broker_app(database_url, allow_public=False, allowed_networks=["127.0.0.0/8"]) as client:
        await subscribe(client, "q", receiver.url)
        public = await client.post("/v1/subscriptions", json={"queue": "q", "url": "http://8.8.8.8/hook"})
        assert public.status_code == 422 and public.json()["code"] == "url_not_allowed"
        job = await enqueue(client, "q")
        await job_in(client, job["id"], "succeeded")
    assert len(receiver.requests) == 1


async def test_allowed_hosts_restrict_subscriber_names(fresh_database) -> None:
    database_url = await fresh_database()
    async with broker_app(database_url, allowed_hosts=["localhost", "*.example.com"], enabled=False) as client:
        allowed = await client.post("/v1/subscriptions", json={"queue": "q", "url": "http://localhost:9/"})
        assert allowed.status_code == 201
        refused = await client.post("/v1/subscriptions", json={"queue": "q", "url": "http://127.0.0.1:9/"})
        assert refused.status_code == 422 and "allowed hosts" in refused.json()["detail"]


async def test_shutdown_interrupts_a_delivery_past_the_grace_period_and_frees_the_job(
    fresh_database, receivers
) -> None:
    release = asyncio.Event()

    receiver = await receivers(held_until(release))
    database_url = await fresh_database()

    async def arrived() -> bool:
        return len(receiver.requests) == 1

    try:
        async with broker_app(database_url, shutdown_grace_s=0.1) as client:
            await subscribe(client, "q", receiver.url, timeout_seconds=60)
            job = await enqueue(client, "q")
            await eventually(arrived)
    finally:
        release.set()
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        row = await conn.fetchrow(
            "SELECT state, run_at <= now() AS due, errors FROM jobbroker.job WHERE id = $1", int(job["id"])
        )
    finally:
        await conn.close()
    # Not left active until its 70 s lease runs out: ready again at once, the attempt counted.
    assert row["state"] == "retrying" and row["due"]
    assert '"interrupted"' in row["errors"]
