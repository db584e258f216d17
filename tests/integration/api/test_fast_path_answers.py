"""The hot routes answer the same through the fast path as through FastAPI.

A `+json` media type is JSON to FastAPI but not one the fast path takes, so the same worker
protocol runs twice, on two queues: once answered by the fast path, once by FastAPI. Every status
and every answer must match, but for the values that differ by nature (ids, lease ids, times).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

FAST = {"Content-Type": "application/json"}
FRAMEWORK = {"Content-Type": "application/vnd.jobbroker+json"}
VARYING = {"id", "lease_id", "queue", "run_at", "created_at", "updated_at", "started_at", "finished_at"}
VARYING |= {"lease_expires_at", "at", "instance", "detail"}


def comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VARYING and not k.endswith("_at")}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


async def worker_protocol(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[int, Any]]:
    """Every hot route, in success and in refusal; the answers in order."""
    queue = f"fp-{uuid.uuid4().hex[:8]}"
    answers: list[tuple[int, Any]] = []

    async def post(path: str, body: Any) -> Any:
        response = await client.post(path, content=httpx.Request("POST", "/", json=body).content, headers=headers)
        answers.append((response.status_code, response.json()))
        return response.json()

    jobs = f"/v1/queues/{queue}/jobs"
    await post(jobs, {"type": "t", "payload": {"n": 1}, "idempotency_key": "k", "tags": ["a"]})
    await post(jobs, {"type": "t", "payload": {"n": 1}, "idempotency_key": "k"})  # duplicate
    await post(f"{jobs}:batch", {"jobs": [{"type": "t", "payload": {"n": n}, "priority": n} for n in range(2, 7)]})
    leased = (await post(f"/v1/queues/{queue}/leases", {"worker_id": "w", "max_jobs": 6}))["jobs"]
    first, second, third, fourth, fifth, sixth = (f"/v1/jobs/{j['id']}" for j in leased)
    lease = [{"lease_id": j["lease_id"]} for j in leased]
    await post(f"{first}/heartbeat", {**lease[0], "progress": {"done": 1}})
    await post(f"{first}/ack", {**lease[0], "result": {"ok": True}})
    await post(f"{first}/ack", lease[0])  # repeated
    await post(f"{second}/ack", {"lease_id": str(uuid.uuid4())})  # stale
    await post(f"{second}/nack", {**lease[1], "error": {"message": "boom", "type": "E"}, "retry_in_seconds": 60})
    await post(f"{third}/release", {**lease[2], "delay_seconds": 60})
    await post("/v1/jobs/999999999/ack", {"lease_id": str(uuid.uuid4())})  # unknown
    ids = [j["id"] for j in leased]
    await post("/v1/acks", {"items": [{"id": ids[3], **lease[3]}, {"id": ids[0], "lease_id": str(uuid.uuid4())}]})
    await post("/v1/nacks", [{"id": ids[4], **lease[4], "retryable": False}])
    await post(f"{sixth}/ack", {**lease[5], "result": "x" * 10})
    await post(f"{fourth}/heartbeat", lease[3])  # acked already
    await post(f"{fifth}/nack", lease[4])  # a repeat of the batch nack: answered again
    return answers


async def test_the_fast_path_answers_as_fastapi_does(client: httpx.AsyncClient) -> None:
    fast = await worker_protocol(client, FAST)
    framework = await worker_protocol(client, FRAMEWORK)
    assert [status for status, _ in fast] == [status for status, _ in framework]
    assert [s for s, _ in fast] == [201, 200, 201, 200, 200, 200, 200, 409, 200, 200, 404, 200, 200, 200, 409, 200]
    for (_, a), (_, b) in zip(fast, framework, strict=True):
        assert comparable(a) == comparable(b)
