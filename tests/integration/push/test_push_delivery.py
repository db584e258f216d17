"""Push delivery end to end: the in-process app's dispatcher POSTs to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import pytest
import standardwebhooks
from push_support import Received, enqueue, held_until, job_in, subscribe
from starlette.responses import JSONResponse, PlainTextResponse, Response

from jobbroker_client import webhooks
from support import eventually, free_port


async def test_delivery_is_signed_per_standard_webhooks_and_acked_with_the_answer(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    async def answer(_r: Received, _n: int) -> Response:
        return JSONResponse({"sent": True, "n": 1})

    receiver = await receivers(answer)
    sub = await subscribe(client, queue_name, receiver.url)
    job = await enqueue(client, queue_name, type="send-email", payload={"to": "ada"}, correlation_id="corr-1")

    done = await job_in(client, job["id"], "succeeded")
    assert done["result"] == {"sent": True, "n": 1}
    assert done["worker_id"] == f"push:{sub['id']}" and done["attempts"] == 1
    [request] = receiver.requests
    assert request.headers["webhook-id"] == f"job_{job['id']}"
    assert request.headers["x-correlation-id"] == "corr-1"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert {k: body[k] for k in ("id", "queue", "type", "payload", "attempt", "correlation_id")} == {
        "id": job["id"],
        "queue": queue_name,
        "type": "send-email",
        "payload": {"to": "ada"},
        "attempt": 1,
        "correlation_id": "corr-1",
    }
    assert datetime.fromisoformat(body["created_at"]) == datetime.fromisoformat(job["created_at"])
    # An implementation nobody here wrote, then the SDK's.
    assert standardwebhooks.Webhook(sub["secret"]).verify(request.body, request.headers) == body
    delivery = webhooks.verify(request.body, request.headers, sub["secret"])
    assert (delivery.job_id, delivery.payload, delivery.attempt) == (job["id"], {"to": "ada"}, 1)
    other = (await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 0})).json()
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other["secret"]).verify(request.body, request.headers)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(request.body.replace(b"ada", b"eve"), request.headers, sub["secret"])


async def test_during_a_rotation_deliveries_carry_both_signatures(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    receiver = await receivers()
    sub = await subscribe(client, queue_name, receiver.url)
    rotated = (await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret")).json()
    assert rotated["secret"] != sub["secret"] and rotated["previous_secret_expires_at"] is not None

    job = await enqueue(client, queue_name)
    await job_in(client, job["id"], "succeeded")
    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (sub["secret"], rotated["secret"]):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
        webhooks.verify(request.body, request.headers, secret)

    await client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", json={"overlap_seconds": 0})
    job = await enqueue(client, queue_name)
    await job_in(client, job["id"], "succeeded")
    assert len(receiver.requests[1].headers["webhook-signature"].split()) == 1


async def test_a_receiver_failing_twice_succeeds_on_the_third_attempt(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    async def flaky(_r: Received, n: int) -> Response:
        return PlainTextResponse("boom", status_code=500) if n <= 2 else JSONResponse({"ok": n})

    receiver = await receivers(flaky)
    await subscribe(client, queue_name, receiver.url)
    job = await enqueue(client, queue_name, max_attempts=5)

    done = await job_in(client, job["id"], "succeeded")
    assert done["attempts"] == 3 and done["result"] == {"ok": 3}
    assert [e["attempt"] for e in done["errors"]] == [1, 2]
    for entry in done["errors"]:
        assert entry["error"]["type"] == "http_500"
        assert "boom" in entry["error"]["message"] and entry["error"]["details"]["status"] == 500
    assert [r.json["attempt"] for r in receiver.requests] == [1, 2, 3]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {f"job_{job['id']}"}
    attempts = (await client.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["outcome"], a["http_status"]) for a in attempts] == [
        ("failed", 500),
        ("failed", 500),
        ("succeeded", 200),
    ]
    assert {a["worker_id"] for a in attempts} == {done["worker_id"]}
    scraped = (await client.get("/metrics")).text
    assert metric(scraped, "jobbroker_push_deliveries_total", queue=queue_name, status="500") == 2
    assert metric(scraped, "jobbroker_push_deliveries_total", queue=queue_name, status="200") == 1
    assert metric(scraped, "jobbroker_jobs_failed_total", queue=queue_name, reason="push_500") == 2
    assert metric(scraped, "jobbroker_jobs_leased_total", queue=queue_name) == 3


async def test_retry_after_on_429_sets_the_next_attempt(client: httpx.AsyncClient, receivers, queue_name: str) -> None:
    async def busy_once(_r: Received, n: int) -> Response:
        return Response(status_code=429, headers={"Retry-After": "2"}) if n == 1 else JSONResponse({})

    receiver = await receivers(busy_once)
    await subscribe(client, queue_name, receiver.url)
    job = await enqueue(client, queue_name)

    waiting = await job_in(client, job["id"], "retrying")
    [entry] = waiting["errors"]
    assert entry["error"]["type"] == "http_429" and entry["error"]["details"]["retry_after_seconds"] == 2
    delay = datetime.fromisoformat(waiting["run_at"]) - datetime.fromisoformat(entry["at"])
    assert abs(delay.total_seconds() - 2) < 0.01  # not the job's 0.1 s backoff
    done = await job_in(client, job["id"], "succeeded")
    assert done["attempts"] == 2
    assert datetime.fromisoformat(done["started_at"]) >= datetime.fromisoformat(waiting["run_at"])
    assert len(receiver.requests) == 2


async def test_a_receiver_that_is_down_dead_letters_and_replay_delivers(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    port = free_port()  # nothing listens here yet
    await subscribe(client, queue_name, f"http://127.0.0.1:{port}/hook")
    job = await enqueue(client, queue_name, max_attempts=3)

    dead = await job_in(client, job["id"], "dead")
    assert [e["error"]["type"] for e in dead["errors"]] == ["connection_error"] * 3

    receiver = await receivers(port=port)
    replay = await client.post("/v1/dlq/replay", json={"ids": [job["id"]]})
    assert replay.json() == {"count": 1}
    done = await job_in(client, job["id"], "succeeded")
    assert done["attempts"] == 1 and len(done["errors"]) == 3  # the history stays
    [request] = receiver.requests
    assert request.headers["webhook-id"] == f"job_{job['id']}" and request.json["attempt"] == 1


async def test_no_answer_within_the_timeout_fails_the_attempt(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    release = asyncio.Event()

    receiver = await receivers(held_until(release))
    await subscribe(client, queue_name, receiver.url, timeout_seconds=1)
    job = await enqueue(client, queue_name, max_attempts=1)
    try:
        dead = await job_in(client, job["id"], "dead")
    finally:
        release.set()
    assert dead["errors"][0]["error"]["type"] == "timeout"
    assert len(receiver.requests) == 1


async def test_a_slow_subscriber_does_not_hold_up_another(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    release = asyncio.Event()

    slow = await receivers(held_until(release))
    fast = await receivers()
    await subscribe(client, f"{queue_name}-slow", slow.url, max_concurrency=1)
    await subscribe(client, queue_name, fast.url)
    try:
        for _ in range(3):
            await enqueue(client, f"{queue_name}-slow")
        await eventually(lambda: _async(len(slow.requests) == 1))
        job = await enqueue(client, queue_name)
        await job_in(client, job["id"], "succeeded")
        assert len(slow.requests) == 1 and slow.in_flight == 1  # still stuck, and capped at one
    finally:
        release.set()


async def test_types_filter_and_pause(client: httpx.AsyncClient, receivers, queue_name: str) -> None:
    receiver = await receivers()
    sub = await subscribe(client, queue_name, receiver.url, types=["wanted"], paused=True)
    wanted = await enqueue(client, queue_name, type="wanted")
    other = await enqueue(client, queue_name, type="other")
    await asyncio.sleep(0.3)  # a paused subscription must not deliver: give it a chance to misbehave
    assert receiver.requests == []

    resumed = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"paused": False})
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    await job_in(client, wanted["id"], "succeeded")
    assert (await client.get(f"/v1/jobs/{other['id']}")).json()["state"] == "pending"
    assert [r.json["type"] for r in receiver.requests] == ["wanted"]


async def test_deleting_a_subscription_lets_its_delivery_in_flight_finish(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    release = asyncio.Event()

    receiver = await receivers(held_until(release, {"late": True}))
    sub = await subscribe(client, queue_name, receiver.url)
    job = await enqueue(client, queue_name)
    try:
        await eventually(lambda: _async(len(receiver.requests) == 1))
        assert (await client.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 204
    finally:
        release.set()
    done = await job_in(client, job["id"], "succeeded")
    assert done["result"] == {"late": True}
    later = await enqueue(client, queue_name)
    await asyncio.sleep(0.3)  # nobody should deliver it: give a stale runner a chance to misbehave
    assert (await client.get(f"/v1/jobs/{later['id']}")).json()["state"] == "pending"
    assert len(receiver.requests) == 1


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include the given ones."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _async(value: bool) -> bool:
    return value


async def test_delivery_carries_the_trace_context_the_job_was_enqueued_under(
    client: httpx.AsyncClient, receivers, queue_name: str
) -> None:
    receiver = await receivers()
    await subscribe(client, queue_name, receiver.url)
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = await client.post(
        f"/v1/queues/{queue_name}/jobs",
        json={"type": "t"},
        headers={"traceparent": traceparent, "tracestate": "vendor=abc"},
    )
    plain = await enqueue(client, queue_name)
    await job_in(client, traced.json()["id"], "succeeded")
    await job_in(client, plain["id"], "succeeded")
    by_id = {r.json["id"]: r.headers for r in receiver.requests}
    assert by_id[traced.json()["id"]]["traceparent"] == traceparent
    assert by_id[traced.json()["id"]]["tracestate"] == "vendor=abc"
    assert "traceparent" not in by_id[plain["id"]] and "tracestate" not in by_id[plain["id"]]
