"""The three clocks of a job against a real broker process (its reaper runs every 0.1 s): the
visibility timeout, the heartbeat timeout and the maximum runtime each end a lease when they should
and never before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

REAP_SLACK_S = 2.5  # the reaper's interval plus a loaded machine


@pytest.fixture
async def http(broker_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_url, timeout=30) as client:
        yield client


async def enqueue_and_lease(http: httpx.AsyncClient, queue: str, **job: Any) -> dict[str, Any]:
    answer = await http.post(f"/v1/queues/{queue}/jobs", json={"type": "t", "max_attempts": 2, **job})
    assert answer.status_code == 201, answer.text
    leased = await http.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w"})
    [lease] = leased.json()["jobs"]
    return lease


async def state_while(http: httpx.AsyncClient, job: dict[str, Any], seconds: float, beat_every: float | None) -> str:
    """Heartbeat (or not) for `seconds` from the lease, then answer the job's state."""
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    while time.time() - started < seconds:
        if beat_every is not None:
            await http.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": job["lease_id"]})
        await asyncio.sleep(beat_every or 0.05)
    return (await http.get(f"/v1/jobs/{job['id']}")).json()["state"]


async def failed(http: httpx.AsyncClient, job: dict[str, Any], within_s: float) -> tuple[dict[str, Any], float]:
    """The job once it left active, and how long after its lease began."""
    started = datetime.fromisoformat(job["started_at"])
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        current = (await http.get(f"/v1/jobs/{job['id']}")).json()
        if current["state"] != "active":
            error_at = datetime.fromisoformat(current["errors"][-1]["at"])
            return current, (error_at - started).total_seconds()
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job['id']} still active after {within_s} s")


async def test_heartbeat_timeout_expires_a_silent_lease_early_but_not_before(
    http: httpx.AsyncClient, queue_name: str
) -> None:
    job = await enqueue_and_lease(http, queue_name, visibility_timeout_seconds=60, heartbeat_timeout_seconds=1)
    assert job["heartbeat_timeout_seconds"] == 1
    assert await state_while(http, job, 0.8, beat_every=None) == "active"
    current, after_s = await failed(http, job, within_s=REAP_SLACK_S + 1)
    assert current["state"] == "retrying"
    assert current["errors"][-1]["error"]["type"] == "lease_expired"
    assert "heartbeat" in current["errors"][-1]["error"]["message"]
    assert 1.0 <= after_s < 1.0 + REAP_SLACK_S


async def test_heartbeats_keep_a_lease_past_its_heartbeat_timeout(http: httpx.AsyncClient, queue_name: str) -> None:
    job = await enqueue_and_lease(http, queue_name, visibility_timeout_seconds=60, heartbeat_timeout_seconds=1)
    assert await state_while(http, job, 3.0, beat_every=0.25) == "active"
    assert (await http.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"]})).status_code == 200


async def test_max_runtime_fails_a_heartbeating_job_when_it_is_up(http: httpx.AsyncClient, queue_name: str) -> None:
    job = await enqueue_and_lease(http, queue_name, visibility_timeout_seconds=60, max_runtime_seconds=2)
    assert await state_while(http, job, 1.7, beat_every=0.2) == "active"
    beat = asyncio.create_task(state_while(http, job, 2.0 + REAP_SLACK_S, beat_every=0.2))
    current, after_s = await failed(http, job, within_s=REAP_SLACK_S + 1)
    beat.cancel()
    assert current["errors"][-1]["error"]["type"] == "max_runtime_exceeded"
    assert current["state"] == "retrying"  # the same failure transition: attempts remain
    assert 2.0 <= after_s < 2.0 + REAP_SLACK_S
    late = await http.post(f"/v1/jobs/{job['id']}/heartbeat", json={"lease_id": job["lease_id"]})
    assert late.status_code == 409


async def test_the_visibility_timeout_still_ends_a_lease(http: httpx.AsyncClient, queue_name: str) -> None:
    job = await enqueue_and_lease(http, queue_name, visibility_timeout_seconds=1, heartbeat_timeout_seconds=30)
    assert await state_while(http, job, 0.8, beat_every=None) == "active"
    current, after_s = await failed(http, job, within_s=REAP_SLACK_S + 1)
    assert current["errors"][-1]["error"]["type"] == "lease_expired"
    assert "heartbeat" not in current["errors"][-1]["error"]["message"]
    assert 1.0 <= after_s < 1.0 + REAP_SLACK_S


async def test_queue_defaults_give_jobs_their_clocks(http: httpx.AsyncClient, queue_name: str) -> None:
    defaults = {
        "default_visibility_timeout_seconds": 40,
        "default_heartbeat_timeout_seconds": 5,
        "default_max_runtime_seconds": 600,
    }
    shown = await http.patch(f"/v1/queues/{queue_name}", json=defaults)
    assert {k: shown.json()[k] for k in defaults} == defaults
    plain = (await http.post(f"/v1/queues/{queue_name}/jobs", json={"type": "t"})).json()
    own = (await http.post(f"/v1/queues/{queue_name}/jobs", json={"type": "t", "heartbeat_timeout_seconds": 9})).json()
    assert (plain["timeout_seconds"], plain["heartbeat_timeout_seconds"], plain["max_runtime_seconds"]) == (40, 5, 600)
    assert own["heartbeat_timeout_seconds"] == 9
    leased = (await http.post(f"/v1/queues/{queue_name}/leases", json={"worker_id": "w"})).json()["jobs"][0]
    expires = datetime.fromisoformat(leased["lease_expires_at"]) - datetime.fromisoformat(leased["started_at"])
    assert expires.total_seconds() == pytest.approx(5, abs=0.01)  # the first clock to run out


async def test_clock_bounds_are_checked(http: httpx.AsyncClient, queue_name: str) -> None:
    for body in (
        {"type": "t", "heartbeat_timeout_seconds": 0},
        {"type": "t", "max_runtime_seconds": -1},
        {"type": "t", "timeout_seconds": 5, "visibility_timeout_seconds": 6},
    ):
        assert (await http.post(f"/v1/queues/{queue_name}/jobs", json=body)).status_code == 422, body
