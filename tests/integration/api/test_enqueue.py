"""Enqueue, one and batched: defaults, scheduling, idempotency, atomicity."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx


async def enqueue(client: httpx.AsyncClient, queue: str = "emails", **body: object) -> httpx.Response:
    return await client.post(f"/v1/queues/{queue}/jobs", json={"type": "send", **body})


async def test_enqueue_answers_201_with_the_stored_job(client: httpx.AsyncClient) -> None:
    response = await enqueue(client, payload={"to": "ada"}, priority=3, tags=["a", "b"], correlation_id="c-1")
    assert response.status_code == 201
    job = response.json()
    assert job["duplicate"] is False
    assert job["state"] == "pending"
    assert job["payload"] == {"to": "ada"}
    assert (job["priority"], job["tags"], job["correlation_id"]) == (3, ["a", "b"], "c-1")
    assert job["attempts"] == 0 and job["max_attempts"] == 5
    fetched = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert fetched["id"] == job["id"] and fetched["payload"] == {"to": "ada"}


async def test_enqueue_takes_every_option(client: httpx.AsyncClient) -> None:
    backoff = {"initial_seconds": 2, "max_seconds": 60, "multiplier": 3, "jitter": 0}
    job = (await enqueue(client, max_attempts=9, backoff=backoff, timeout_seconds=120, idempotency_key="k")).json()
    assert job["max_attempts"] == 9
    assert job["backoff"] == {"initial_seconds": 2.0, "max_seconds": 60.0, "multiplier": 3.0, "jitter": 0.0}
    assert job["timeout_seconds"] == 120 and job["idempotency_key"] == "k"


async def test_correlation_header_is_stored(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/queues/q/jobs", json={"type": "t"}, headers={"X-Correlation-ID": "req-9"})
    assert response.json()["correlation_id"] == "req-9"


async def test_delay_and_run_at_schedule_the_job(client: httpx.AsyncClient) -> None:
    delayed = (await enqueue(client, delay_seconds=60)).json()
    at = datetime.now(UTC) + timedelta(hours=2)
    scheduled = (await enqueue(client, run_at=at.isoformat())).json()
    now = datetime.now(UTC)
    assert timedelta(seconds=55) < datetime.fromisoformat(delayed["run_at"]) - now < timedelta(seconds=65)
    assert abs(datetime.fromisoformat(scheduled["run_at"]) - at) < timedelta(milliseconds=1)


async def test_repeated_idempotency_key_answers_the_existing_job(client: httpx.AsyncClient) -> None:
    first = await enqueue(client, idempotency_key="once", payload={"n": 1, "m": [1.0]})
    second = await enqueue(client, idempotency_key="once", payload={"m": [1.0], "n": 1})  # key order aside
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"] and second.json()["payload"] == {"n": 1, "m": [1.0]}
    other_queue = await enqueue(client, "other", idempotency_key="once")
    assert other_queue.status_code == 201


async def test_idempotency_key_reused_with_another_payload_or_type_is_a_conflict_naming_the_job(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    first = (await enqueue(client, idempotency_key="once", payload={"n": 1})).json()
    for changed in ({"payload": {"n": 2}}, {"type": "other", "payload": {"n": 1}}):
        response = await enqueue(client, idempotency_key="once", **changed)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "idempotency_conflict" and response.json()["job_id"] == first["id"]
        assert first["id"] in response.json()["detail"]
    batch = [{"type": "send", "payload": {"fresh": True}}, {"type": "send", "idempotency_key": "once"}]
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": batch})
    assert response.status_code == 409 and response.json()["code"] == "idempotency_conflict"
    assert await pool.fetchval("SELECT count(*) FROM job") == 1, "a conflicting batch stored nothing"


async def test_concurrent_identical_idempotent_enqueues_create_one_job(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    responses = await asyncio.gather(*(enqueue(client, idempotency_key="race") for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await pool.fetchval("SELECT count(*) FROM job") == 1


async def test_batch_answers_in_input_order_with_duplicates(client: httpx.AsyncClient) -> None:
    await enqueue(client, idempotency_key="seen")
    jobs = [
        {"type": "a"},
        {"type": "send", "idempotency_key": "seen"},
        {"type": "c", "idempotency_key": "new"},
        {"type": "c", "idempotency_key": "new"},
    ]
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 201
    answered = response.json()["jobs"]
    assert [j["duplicate"] for j in answered] == [False, True, False, True]
    assert answered[0]["type"] == "a" and answered[2]["type"] == "c"
    assert answered[3]["id"] == answered[2]["id"]


async def test_batch_with_one_invalid_item_writes_nothing(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    jobs = [{"type": "ok"}] * 5 + [{"type": "bad", "priority": "high"}]
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert await pool.fetchval("SELECT count(*) FROM job") == 0


async def test_batch_failing_in_the_database_writes_nothing(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    # A NUL character passes JSON validation but PostgreSQL refuses it: the whole batch must roll back.
    jobs = [{"type": "ok", "payload": {"n": i}} for i in range(5)] + [{"type": "ok", "payload": {"s": "a\u0000b"}}]
    response = await client.post("/v1/queues/emails/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM job") == 0


async def test_batch_of_1000_is_accepted_and_1001_refused(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    ok = await client.post("/v1/queues/big/jobs:batch", json={"jobs": [{"type": "t"}] * 1000})
    assert ok.status_code == 201 and len(ok.json()["jobs"]) == 1000
    too_many = await client.post("/v1/queues/big/jobs:batch", json={"jobs": [{"type": "t"}] * 1001})
    assert too_many.status_code == 422
    assert await pool.fetchval("SELECT count(*) FROM job") == 1000


async def test_payload_over_the_limit_is_refused_with_413(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    response = await enqueue(client, payload={"blob": "x" * (256 * 1024)})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await pool.fetchval("SELECT count(*) FROM job") == 0


async def test_queue_defaults_apply_to_new_jobs(client: httpx.AsyncClient) -> None:
    patch = {"default_max_attempts": 2, "default_backoff": {"initial_seconds": 5, "max_seconds": 50}}
    assert (await client.patch("/v1/queues/tuned", json=patch)).status_code == 200
    job = (await enqueue(client, "tuned")).json()
    assert job["max_attempts"] == 2
    assert job["backoff"]["initial_seconds"] == 5.0 and job["backoff"]["max_seconds"] == 50.0
    explicit = (await enqueue(client, "tuned", max_attempts=7)).json()
    assert explicit["max_attempts"] == 7
