"""/metrics: job counters and histograms move as jobs flow, and the queue gauges match the database."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from observability_support import Scrape, scrape

from support import Api, eventually

STATES = ("pending", "retrying", "active", "dead")


def fresh_queue() -> str:
    return f"m-{uuid.uuid4().hex[:10]}"


async def test_counters_follow_enqueue_lease_ack_nack_dead_replay_cancel(observed: httpx.AsyncClient) -> None:
    api, q = Api(observed), fresh_queue()
    for n in range(3):
        await api.enqueue(q, "mail", idempotency_key=f"k{n}")
    await api.enqueue(q, "mail", idempotency_key="k0")  # a duplicate: counts nothing
    jobs = await api.lease(q, max_jobs=3)
    assert len(jobs) == 3
    assert (await api.ack(jobs[0], result={"ok": True})).status_code == 200
    assert (await api.ack(jobs[0])).status_code == 200  # a repeated ack: counts nothing
    assert (await api.nack(jobs[1], "again")).json()["state"] == "retrying"
    assert (await api.nack(jobs[2], "fatal", retryable=False)).json()["state"] == "dead"
    assert (await observed.post(f"/v1/jobs/{jobs[2]['id']}/replay")).status_code == 200
    assert (await observed.post(f"/v1/jobs/{jobs[2]['id']}/cancel")).json()["state"] == "cancelled"

    m = await scrape(observed)
    labels = {"queue": q, "type": "mail"}
    assert m.value("jobbroker_jobs_enqueued_total", **labels) == 3
    assert m.value("jobbroker_jobs_leased_total", **labels) == 3
    assert m.value("jobbroker_jobs_succeeded_total", **labels) == 1
    assert m.value("jobbroker_jobs_failed_total", reason="error", **labels) == 2
    assert m.value("jobbroker_jobs_dead_total", **labels) == 1
    assert m.value("jobbroker_jobs_replayed_total", queue=q) == 1
    assert m.value("jobbroker_jobs_cancelled_total", **labels) == 1
    assert m.value("jobbroker_job_run_duration_seconds_count", queue=q, outcome="succeeded") == 1
    assert m.value("jobbroker_job_run_duration_seconds_count", queue=q, outcome="failed") == 2
    assert m.value("jobbroker_job_wait_duration_seconds_count", queue=q) == 3
    assert m.types["jobbroker_jobs_enqueued"] == "counter"
    assert m.types["jobbroker_job_run_duration_seconds"] == "histogram"


async def test_batches_and_bulk_dlq_operations_count_per_queue(observed: httpx.AsyncClient) -> None:
    api, q = Api(observed), fresh_queue()
    answer = await observed.post(f"/v1/queues/{q}/jobs:batch", json={"jobs": [{"type": "t"} for _ in range(6)]})
    assert answer.status_code == 201
    jobs = await api.lease(q, max_jobs=6)
    acks = [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs[:2]]
    assert all(r["ok"] for r in (await observed.post("/v1/acks", json={"items": acks})).json()["results"])
    assert all(r["ok"] for r in (await observed.post("/v1/acks", json={"items": acks})).json()["results"])  # repeat
    nacks = [
        {"id": j["id"], "lease_id": j["lease_id"], "error": {"message": "x"}, "retryable": False} for j in jobs[2:]
    ]
    assert all(r["ok"] for r in (await observed.post("/v1/nacks", json={"items": nacks})).json()["results"])
    replay = await observed.post("/v1/dlq/replay", json={"ids": [jobs[2]["id"], jobs[3]["id"]]})
    assert replay.json() == {"count": 2}
    assert (await observed.post("/v1/dlq/purge", json={"queue": q})).json() == {"count": 2}

    m = await scrape(observed)
    assert m.value("jobbroker_jobs_enqueued_total", queue=q, type="t") == 6
    assert m.value("jobbroker_jobs_succeeded_total", queue=q, type="t") == 2
    assert m.value("jobbroker_jobs_failed_total", queue=q, type="t", reason="error") == 4
    assert m.value("jobbroker_jobs_dead_total", queue=q, type="t") == 4
    assert m.value("jobbroker_jobs_replayed_total", queue=q) == 2
    assert m.value("jobbroker_jobs_purged_total", queue=q) == 2
    assert m.value("jobbroker_job_run_duration_seconds_count", queue=q, outcome="succeeded") == 2


async def test_an_expired_lease_counts_as_stalled(observed: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    api, q = Api(observed), fresh_queue()
    await api.enqueue(q, "slow")
    job = await api.lease_one(q)
    await pool.execute("UPDATE job SET lease_expires_at = now() - interval '1 second' WHERE id = $1", int(job["id"]))

    async def stalled() -> bool:
        return (await scrape(observed)).value("jobbroker_jobs_stalled_total", queue=q, type="slow") == 1

    await eventually(stalled)
    m = await scrape(observed)
    assert m.value("jobbroker_jobs_failed_total", queue=q, type="slow", reason="lease_expired") == 1


async def test_http_requests_are_counted_by_route_template(observed: httpx.AsyncClient) -> None:
    before = await scrape(observed)
    labels = {"handler": "/v1/jobs/{id}", "method": "GET", "status": "404"}
    assert (await observed.get("/v1/jobs/999999999")).status_code == 404
    after = await scrape(observed)
    assert (
        after.value("jobbroker_http_requests_total", **labels)
        == before.value("jobbroker_http_requests_total", **labels) + 1
    )
    assert not after.series("jobbroker_http_requests_total", handler="/v1/jobs/999999999")


async def test_worker_requests_and_refusals_are_counted_too(observed: httpx.AsyncClient) -> None:
    """The hot routes (answered by the fast path) and refusals made before any route are counted
    like every other request, by route template and status."""
    api, q = Api(observed), fresh_queue()
    before = await scrape(observed)
    await api.enqueue(q, "mail")
    [job] = await api.lease(q)
    assert (await api.ack(job)).status_code == 200
    assert (await api.ack(job, lease_id=str(uuid.uuid4()))).status_code == 409
    assert (await observed.post(f"/v1/queues/{q}/leases", json={"max_jobs": 0})).status_code == 422
    after = await scrape(observed)

    def moved(handler: str, status: str) -> float:
        labels = {"handler": handler, "method": "POST", "status": status}
        return after.value("jobbroker_http_requests_total", **labels) - before.value(
            "jobbroker_http_requests_total", **labels
        )

    assert moved("/v1/queues/{queue}/jobs", "201") == 1
    assert moved("/v1/queues/{queue}/leases", "200") == 1
    assert moved("/v1/jobs/{id}/ack", "200") == 1
    assert moved("/v1/jobs/{id}/ack", "409") == 1
    assert moved("/v1/queues/{queue}/leases", "422") == 1


async def _database_truth(pool: asyncpg.Pool, queue: str) -> dict[str, float]:
    counts = dict.fromkeys(STATES, 0)
    for row in await pool.fetch("SELECT state, count(*) AS n FROM job WHERE queue = $1 GROUP BY state", queue):
        if row["state"] in counts:
            counts[row["state"]] = row["n"]
    ready = await pool.fetchval(
        "SELECT count(*) FROM job WHERE queue = $1 AND state IN ('pending', 'retrying') AND run_at <= now()", queue
    )
    return {**{f"jobs:{s}": float(n) for s, n in counts.items()}, "ready": float(ready)}


def _gauges(m: Scrape, queue: str) -> dict[str, float]:
    found = {f"jobs:{s}": m.value("jobbroker_queue_jobs", queue=queue, state=s) for s in STATES}
    found["ready"] = m.value("jobbroker_queue_ready_jobs", queue=queue)
    return found


async def test_gauges_match_the_database_at_every_step(observed: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    api, q = Api(observed), fresh_queue()

    async def check() -> Scrape:
        m = await scrape(observed)
        assert m.value("jobbroker_database_up") == 1
        truth = await _database_truth(pool, q)
        assert _gauges(m, q) == truth
        assert m.value("jobbroker_queue_active_leases", queue=q) == truth["jobs:active"]
        assert m.value("jobbroker_dlq_jobs", queue=q) == truth["jobs:dead"]
        return m

    for _ in range(3):
        await api.enqueue(q, "t")
    await api.enqueue(q, "t", delay_seconds=3600)
    m = await check()
    assert _gauges(m, q)["jobs:pending"] == 4 and _gauges(m, q)["ready"] == 3
    assert m.value("jobbroker_queue_oldest_ready_age_seconds", queue=q) >= 0
    jobs = await api.lease(q, max_jobs=3)
    assert (await check()).value("jobbroker_queue_active_leases", queue=q) == 3
    await api.ack(jobs[0])
    await check()
    await api.nack(jobs[1], "later", retry_in_seconds=3600)
    assert (await check()).value("jobbroker_queue_jobs", queue=q, state="retrying") == 1
    await api.nack(jobs[2], "fatal", retryable=False)
    assert (await check()).value("jobbroker_dlq_jobs", queue=q) == 1


async def test_oldest_ready_age_reflects_the_longest_waiting_job(
    observed: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    api, q = Api(observed), fresh_queue()
    job = await api.enqueue(q, "t")
    await pool.execute("UPDATE job SET run_at = now() - interval '90 seconds' WHERE id = $1", int(job["id"]))
    await api.enqueue(q, "t")
    age = (await scrape(observed)).value("jobbroker_queue_oldest_ready_age_seconds", queue=q)
    assert 90 <= age < 90 + 60


async def test_a_configured_queue_without_jobs_reports_zeros(observed: httpx.AsyncClient) -> None:
    q = fresh_queue()
    assert (await observed.patch(f"/v1/queues/{q}", json={"paused": True})).status_code == 200
    m = await scrape(observed)
    assert ("jobbroker_queue_jobs", frozenset({("queue", q), ("state", "pending")})) in m.samples
    assert _gauges(m, q) == dict.fromkeys(_gauges(m, q), 0.0)
    assert m.value("jobbroker_dlq_jobs", queue=q) == 0
