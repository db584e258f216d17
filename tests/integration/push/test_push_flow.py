"""Push backpressure per flow key: a subscriber's 429 or 503 with Retry-After for a keyed job pauses
that key alone. A real broker process on its own database (its dispatcher polls often)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from push_support import Received, job_in, subscribe
from starlette.responses import JSONResponse, Response

from support import BrokerProcess, eventually


@pytest.mark.parametrize("status", [429, 503])
async def test_a_retry_after_for_a_keyed_job_pauses_only_its_key(
    fresh_database: Callable[[], Awaitable[str]], receivers, status: int
) -> None:
    delivered: list[tuple[str, float]] = []
    refused_at: list[float] = []

    async def respond(request: Received, _n: int) -> Response:
        key = request.json["flow_key"]
        delivered.append((key, time.monotonic()))
        if key == "a" and not refused_at:
            refused_at.append(time.monotonic())
            return Response(status_code=status, headers={"Retry-After": "2"})
        return JSONResponse({})

    receiver = await receivers(respond)
    broker = BrokerProcess(await fresh_database(), JOBBROKER_PUSH__POLL_INTERVAL_S="0.05")
    await asyncio.to_thread(broker.start)
    try:
        async with httpx.AsyncClient(base_url=broker.url, timeout=30) as http:
            flow = {"flow": {"max_concurrency_per_key": 1}}
            assert (await http.patch("/v1/queues/q", json=flow)).status_code == 200
            await subscribe(http, "q", receiver.url, max_concurrency=4)
            jobs = [{"type": "t", "flow_key": k} for k in ("a", "a", "b", "b")]
            answer = await http.post("/v1/queues/q/jobs:batch", json={"jobs": jobs})
            ids = [j["id"] for j in answer.json()["jobs"]]

            async def b_done() -> bool:
                return [k for k, _ in delivered].count("b") == 2

            await eventually(b_done, within_s=10)
            key = (await http.get("/v1/queues/q/keys/a")).json()
            assert key["paused_until"] is not None
            for job_id in ids:
                await job_in(http, job_id, "succeeded", within_s=15)
    finally:
        broker.stop()
    [refused] = refused_at
    later_a = [t for k, t in delivered if k == "a" and t > refused]
    assert len(later_a) == 2  # the refused job again, and the key's other job
    assert min(later_a) - refused >= 1.8  # the whole key waited for Retry-After
    b_times = [t for k, t in delivered if k == "b"]
    assert max(b_times) - refused < 1.8  # the other key did not
