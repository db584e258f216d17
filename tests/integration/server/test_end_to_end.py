"""Against real server processes: concurrency, crashes, stalled workers, long-poll, database outages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx

from jobbroker.store.db import plain_url
from support import BrokerProcess, TcpProxy, eventually


async def drain(
    http: httpx.AsyncClient,
    queue: str,
    worker: str,
    acked: Counter,
    leases: Counter,
    batch_ack: bool,
    idle_rounds: int = 3,
) -> None:
    """Lease and ack until the queue stays empty; counts each ack and each (job, lease) handed out."""
    idle = 0
    while idle < idle_rounds:
        response = await http.post(
            f"/v1/queues/{queue}/leases",
            json={"worker_id": worker, "max_jobs": 25, "visibility_timeout_seconds": 300, "wait_seconds": 0.2},
        )
        jobs = response.json()["jobs"]
        if not jobs:
            idle += 1
            continue
        idle = 0
        for job in jobs:
            leases[job["id"]] += 1
        if batch_ack:
            items = [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]
            results = (await http.post("/v1/acks", json={"items": items})).json()["results"]
            assert all(r["ok"] for r in results), results
            acked.update(j["id"] for j in jobs)
        else:
            for job in jobs:
                r = await http.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"]})
                assert r.status_code == 200, r.text
                acked[job["id"]] += 1


async def test_5000_jobs_drained_by_8_loops_each_succeed_exactly_once(own_broker: BrokerProcess) -> None:
    queue = "drain"
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=own_broker.url, timeout=30, limits=limits) as http:
        for _ in range(5):
            r = await http.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": [{"type": "t"}] * 1000})
            assert r.status_code == 201
        acked: Counter = Counter()
        leases: Counter = Counter()
        await asyncio.gather(*(drain(http, queue, f"w{n}", acked, leases, batch_ack=n % 2 == 0) for n in range(8)))
        assert len(acked) == 5000 and set(acked.values()) == {1}
        assert set(leases.values()) == {1}, "a job was handed to two leases"
        stats = (await http.get(f"/v1/queues/{queue}")).json()
        assert stats["counts"]["succeeded"] == 5000 and stats["active_leases"] == 0
    conn = await asyncpg.connect(own_broker.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobbroker.job WHERE attempts <> 1") == 0
    finally:
        await conn.close()


async def test_acknowledged_enqueues_survive_a_broker_sigkill(own_broker: BrokerProcess) -> None:
    queue = "crash"
    acknowledged: list[str] = []

    async def produce(http: httpx.AsyncClient, n: int) -> None:
        for i in range(10_000):
            try:
                r = await http.post(f"/v1/queues/{queue}/jobs", json={"type": "t", "payload": {"p": n, "i": i}})
            except httpx.TransportError:
                return
            if r.status_code == 201:
                acknowledged.append(r.json()["id"])

    async with httpx.AsyncClient(base_url=own_broker.url, timeout=10) as http:
        producers = [asyncio.create_task(produce(http, n)) for n in range(4)]
        await eventually(lambda: _at_least(acknowledged, 300), within_s=30)
        own_broker.kill()
        await asyncio.gather(*producers)
    assert len(acknowledged) >= 300
    await asyncio.to_thread(own_broker.start)
    async with httpx.AsyncClient(base_url=own_broker.url, timeout=30) as http:
        acked: Counter = Counter()
        await drain(http, queue, "after-crash", acked, Counter(), batch_ack=True)
        missing = set(acknowledged) - set(acked)
        assert not missing, f"{len(missing)} acknowledged enqueues were lost"
        for job_id in acknowledged[:20]:
            assert (await http.get(f"/v1/jobs/{job_id}")).json()["state"] == "succeeded"


async def _at_least(items: list, n: int) -> bool:
    return len(items) >= n


async def test_jobs_of_a_dead_worker_are_re_leased_after_the_visibility_timeout(
    broker_url: str, queue_name: str
) -> None:
    async with httpx.AsyncClient(base_url=broker_url, timeout=30) as http:
        await http.post(
            f"/v1/queues/{queue_name}/jobs:batch",
            json={"jobs": [{"type": "t", "backoff": {"initial_seconds": 0.01, "jitter": 0}}] * 3},
        )
        held = (
            await http.post(
                f"/v1/queues/{queue_name}/leases",
                json={"worker_id": "doomed", "max_jobs": 3, "visibility_timeout_seconds": 1},
            )
        ).json()
        assert len(held["jobs"]) == 3
        # The worker "dies": it never acks. Another worker waits for the jobs to come back.
        started = time.monotonic()
        again = []
        while len(again) < 3 and time.monotonic() - started < 15:
            r = await http.post(
                f"/v1/queues/{queue_name}/leases", json={"worker_id": "survivor", "max_jobs": 3, "wait_seconds": 5}
            )
            again += r.json()["jobs"]
        assert {j["id"] for j in again} == {j["id"] for j in held["jobs"]}
        assert all(j["attempt"] == 2 for j in again)
        waited = time.monotonic() - started
        assert waited >= 0.9, "re-leased before the visibility timeout"
        assert waited < 4, f"took {waited:.1f}s: the waiting lease was not woken by the reaper's retry"
        job = (await http.get(f"/v1/jobs/{again[0]['id']}")).json()
        assert job["errors"][0]["error"]["type"] == "lease_expired" and job["errors"][0]["worker_id"] == "doomed"


async def test_a_long_polling_worker_gets_a_job_enqueued_later_at_once(broker_url: str, queue_name: str) -> None:
    async with httpx.AsyncClient(base_url=broker_url, timeout=30) as http:

        async def enqueue_later() -> tuple[str, float]:
            await asyncio.sleep(0.2)
            r = await http.post(f"/v1/queues/{queue_name}/jobs", json={"type": "t"})
            return r.json()["id"], time.monotonic()

        lease = asyncio.create_task(
            http.post(f"/v1/queues/{queue_name}/leases", json={"worker_id": "w", "wait_seconds": 10})
        )
        job_id, enqueued_at = await enqueue_later()
        response = await lease
        woke_after = time.monotonic() - enqueued_at
        assert [j["id"] for j in response.json()["jobs"]] == [job_id]
        assert woke_after < 2, f"woke {woke_after:.2f}s after the enqueue, not on its notification"


async def test_database_outage_answers_503_and_the_broker_recovers(
    fresh_database,
    admin_url: str,  # type: ignore[no-untyped-def]
) -> None:
    url = await fresh_database()
    parts = urlsplit(plain_url(url))
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    proxy = TcpProxy(host, parts.port or 5432)
    await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}", query=""))
    broker = BrokerProcess(proxied)
    await asyncio.to_thread(broker.start)
    try:
        async with httpx.AsyncClient(base_url=broker.url, timeout=30) as http:
            before = (await http.post("/v1/queues/o/jobs", json={"type": "t"})).json()["id"]
            proxy.cut()
            during = await http.post("/v1/queues/o/jobs", json={"type": "t"})
            assert during.status_code == 503 and during.json()["code"] == "database_unavailable"
            assert (await http.get("/readyz")).status_code == 503
            assert (await http.get("/healthz")).status_code == 200
            proxy.restore()

            async def recovered() -> bool:
                return (await http.post("/v1/queues/o/jobs", json={"type": "t"})).status_code == 201

            await eventually(recovered, within_s=20, every_s=0.2)
            assert (await http.get(f"/v1/jobs/{before}")).json()["state"] == "pending"
            # The listener reconnected too: a waiting lease is woken by a new enqueue.
            lease = asyncio.create_task(
                http.post("/v1/queues/woken/leases", json={"worker_id": "w", "wait_seconds": 10})
            )
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await http.post("/v1/queues/woken/jobs", json={"type": "t"})
            assert len((await lease).json()["jobs"]) == 1
            assert time.monotonic() - started < 4
    finally:
        await asyncio.to_thread(broker.stop)
        await proxy.stop()


def test_the_image_healthcheck_command_passes_against_a_live_broker(broker_process: BrokerProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")}
    env |= {"JOBBROKER_HOST": "0.0.0.0", "JOBBROKER_PORT": str(broker_process.port)}
    done = subprocess.run([sys.executable, "-m", "jobbroker", "healthcheck"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
