"""Flow control per key against a real broker process: flow_key, per-key limits, fairness, pauses
and backpressure. Each test uses its own queue on the session's shared server."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from support import eventually

FRAMEWORK = {"Content-Type": "application/vnd.jobbroker+json"}


@pytest.fixture
async def http(broker_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_url, timeout=30) as client:
        yield client


async def enqueue_keys(http: httpx.AsyncClient, queue: str, keys: list[str | None]) -> list[dict[str, Any]]:
    jobs = [{"type": "t", "payload": {"n": i}} | ({"flow_key": k} if k else {}) for i, k in enumerate(keys)]
    answer = await http.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": jobs})
    assert answer.status_code == 201, answer.text
    return answer.json()["jobs"]


async def lease(http: httpx.AsyncClient, queue: str, max_jobs: int = 1, **body: Any) -> list[dict[str, Any]]:
    answer = await http.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "max_jobs": max_jobs, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()["jobs"]


async def ack(http: httpx.AsyncClient, job: dict[str, Any]) -> None:
    answer = await http.post(f"/v1/jobs/{job['id']}/ack", json={"lease_id": job["lease_id"]})
    assert answer.status_code == 200, answer.text


async def set_flow(http: httpx.AsyncClient, queue: str, **flow: Any) -> dict[str, Any]:
    answer = await http.patch(f"/v1/queues/{queue}", json={"flow": flow})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_flow_key_is_stored_and_returned_on_every_enqueue_path(http: httpx.AsyncClient, queue_name: str) -> None:
    fast = await http.post(f"/v1/queues/{queue_name}/jobs", json={"type": "t", "flow_key": "tenant-1"})
    framework = await http.post(
        f"/v1/queues/{queue_name}/jobs", content=b'{"type": "t", "flow_key": "tenant-2"}', headers=FRAMEWORK
    )
    batch = await enqueue_keys(http, queue_name, ["tenant-3", None])
    assert fast.status_code == framework.status_code == 201
    assert [fast.json()["flow_key"], framework.json()["flow_key"]] == ["tenant-1", "tenant-2"]
    assert [j["flow_key"] for j in batch] == ["tenant-3", None]
    assert (await http.get(f"/v1/jobs/{fast.json()['id']}")).json()["flow_key"] == "tenant-1"
    leased = await lease(http, queue_name, 10)
    assert sorted(j["flow_key"] or "" for j in leased) == ["", "tenant-1", "tenant-2", "tenant-3"]


@pytest.mark.parametrize("key", ["", "x" * 201, 7])
async def test_a_bad_flow_key_is_a_422_and_stores_nothing(http: httpx.AsyncClient, queue_name: str, key: Any) -> None:
    answer = await http.post(f"/v1/queues/{queue_name}/jobs", json={"type": "t", "flow_key": key})
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    batch = {"jobs": [{"type": "t"}, {"type": "t", "flow_key": key}]}
    assert (await http.post(f"/v1/queues/{queue_name}/jobs:batch", json=batch)).status_code == 422
    assert (await http.get(f"/v1/queues/{queue_name}")).json()["counts"]["pending"] == 0


async def test_queue_flow_settings_change_only_the_fields_given(http: httpx.AsyncClient, queue_name: str) -> None:
    shown = await set_flow(http, queue_name, max_concurrency_per_key=2)
    assert shown["flow"] == {"max_concurrency_per_key": 2, "rate_limit_per_key": None, "fairness": "round_robin"}
    shown = await set_flow(http, queue_name, rate_limit_per_key={"max": 5, "per_seconds": 2}, fairness="fifo")
    assert shown["flow"] == {
        "max_concurrency_per_key": 2,
        "rate_limit_per_key": {"max": 5, "per_seconds": 2.0},
        "fairness": "fifo",
    }
    assert (await http.get(f"/v1/queues/{queue_name}")).json()["flow"] == shown["flow"]
    reset = await http.patch(f"/v1/queues/{queue_name}", json={"flow": None})
    assert reset.json()["flow"] == {
        "max_concurrency_per_key": None,
        "rate_limit_per_key": None,
        "fairness": "round_robin",
    }
    bad = await http.patch(f"/v1/queues/{queue_name}", json={"flow": {"fairness": "lifo"}})
    assert bad.status_code == 422


async def test_round_robin_interleaves_ready_keys(http: httpx.AsyncClient, queue_name: str) -> None:
    # The big key's backlog is enqueued first: FIFO would hand out all 30 before the others.
    await enqueue_keys(http, queue_name, ["big"] * 30 + ["a"] * 3 + ["b"] * 3)
    order = []
    for _ in range(9):
        [job] = await lease(http, queue_name)
        order.append(job["flow_key"])
        await ack(http, job)
    assert Counter(order) == {"big": 3, "a": 3, "b": 3}, order
    # Each run of three leases serves every key once.
    assert all(sorted(order[i : i + 3]) == ["a", "b", "big"] for i in range(0, 9, 3)), order
    one_lease = await lease(http, queue_name, 5)
    assert [j["flow_key"] for j in one_lease] == ["big"] * 5


async def test_fifo_keeps_lease_order_and_still_holds_key_limits(http: httpx.AsyncClient, queue_name: str) -> None:
    await set_flow(http, queue_name, fairness="fifo", max_concurrency_per_key=1)
    jobs = await enqueue_keys(http, queue_name, ["big", "big", "big", "a", "b"])
    leased = await lease(http, queue_name, 10)
    assert [j["id"] for j in leased] == [jobs[0]["id"], jobs[3]["id"], jobs[4]["id"]]
    await ack(http, leased[0])
    assert [j["id"] for j in await lease(http, queue_name, 10)] == [jobs[1]["id"]]


async def test_a_key_limit_overrides_the_queue_default(http: httpx.AsyncClient, queue_name: str) -> None:
    await set_flow(http, queue_name, max_concurrency_per_key=1)
    key = await http.patch(f"/v1/queues/{queue_name}/keys/wide", json={"max_concurrency": 3})
    assert key.status_code == 200 and key.json()["max_concurrency"] == 3
    await enqueue_keys(http, queue_name, ["wide"] * 5 + ["narrow"] * 5)
    counts = Counter(j["flow_key"] for j in await lease(http, queue_name, 10))
    assert counts == {"wide": 3, "narrow": 1}
    assert await lease(http, queue_name, 10) == []
    shown = (await http.get(f"/v1/queues/{queue_name}/keys/wide")).json()
    assert shown["active"] == 3 and shown["ready"] == 2


async def test_a_key_pause_stops_only_that_key(http: httpx.AsyncClient, queue_name: str) -> None:
    await enqueue_keys(http, queue_name, ["a", "a", "b", "b", None])
    paused = await http.patch(f"/v1/queues/{queue_name}/keys/a", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    leased = await lease(http, queue_name, 10)
    assert sorted(j["flow_key"] or "" for j in leased) == ["", "b", "b"]
    assert await lease(http, queue_name, 10) == []
    await http.patch(f"/v1/queues/{queue_name}/keys/a", json={"paused": False})
    assert [j["flow_key"] for j in await lease(http, queue_name, 10)] == ["a", "a"]


async def test_paused_until_holds_a_key_until_then(http: httpx.AsyncClient, queue_name: str) -> None:
    await enqueue_keys(http, queue_name, ["a", "b"])
    start = time.monotonic()
    resume = datetime.now(UTC) + timedelta(seconds=1.2)
    answer = await http.patch(f"/v1/queues/{queue_name}/keys/a", json={"paused_until": resume.isoformat()})
    assert answer.json()["paused_until"] is not None
    assert [j["flow_key"] for j in await lease(http, queue_name, 10)] == ["b"]

    async def a_leased() -> bool:
        return [j["flow_key"] for j in await lease(http, queue_name, 10)] == ["a"]

    await eventually(a_leased, within_s=5)
    assert time.monotonic() - start >= 1.0


async def test_nack_with_pause_key_pauses_only_that_key_until_the_retry(
    http: httpx.AsyncClient, queue_name: str
) -> None:
    await enqueue_keys(http, queue_name, ["a", "a", "b", "b"])
    [first] = await lease(http, queue_name)
    assert first["flow_key"] == "a"
    refused = await http.post(f"/v1/jobs/{first['id']}/nack", json={"lease_id": first["lease_id"], "pause_key": True})
    assert refused.status_code == 422
    nacked_at = time.monotonic()
    body = {"lease_id": first["lease_id"], "error": "429 from the tenant", "retry_in_seconds": 1.5, "pause_key": True}
    assert (await http.post(f"/v1/jobs/{first['id']}/nack", json=body)).status_code == 200
    key = (await http.get(f"/v1/queues/{queue_name}/keys/a")).json()
    assert key["paused_until"] is not None and key["paused"] is False
    assert [j["flow_key"] for j in await lease(http, queue_name, 10)] == ["b", "b"]
    assert (await http.get(f"/v1/queues/{queue_name}")).json()["paused"] is False

    async def a_back() -> bool:
        return len([j for j in await lease(http, queue_name, 10) if j["flow_key"] == "a"]) == 2

    await eventually(a_back, within_s=6)
    assert time.monotonic() - nacked_at >= 1.4


async def test_batch_nack_with_pause_key_pauses_the_key(http: httpx.AsyncClient, queue_name: str) -> None:
    await enqueue_keys(http, queue_name, ["a", "a", "b"])
    [job] = await lease(http, queue_name)
    item = {"id": job["id"], "lease_id": job["lease_id"], "retry_in_seconds": 30, "pause_key": True}
    answer = await http.post("/v1/nacks", json={"items": [item]})
    assert (
        answer.json()["results"] == [{"id": job["id"], "ok": True, "code": None}] or answer.json()["results"][0]["ok"]
    )
    assert [j["flow_key"] for j in await lease(http, queue_name, 10)] == ["b"]


async def test_rate_limit_per_key_holds_within_one_job_per_window(http: httpx.AsyncClient, queue_name: str) -> None:
    rate = await http.patch(f"/v1/queues/{queue_name}/keys/slow", json={"rate_limit": {"max": 4, "per_seconds": 1}})
    assert rate.json()["rate_limit"] == {"max": 4, "per_seconds": 1.0}
    await enqueue_keys(http, queue_name, ["slow"] * 40 + ["free"] * 10)
    started: list[datetime] = []
    free = 0
    deadline = time.monotonic() + 3.2
    while time.monotonic() < deadline:
        for job in await lease(http, queue_name, 10):
            if job["flow_key"] == "slow":
                started.append(datetime.fromisoformat(job["started_at"]))
            else:
                free += 1
            await ack(http, job)
        await asyncio.sleep(0.02)
    assert free == 10  # the other key is not held back
    assert 8 <= len(started) <= 4 * 3.2 + 1
    for first in started:
        in_window = [t for t in started if 0 <= (t - first).total_seconds() < 1.0]
        assert len(in_window) <= 4 + 1, in_window


async def test_keys_list_pages_with_a_cursor(http: httpx.AsyncClient, queue_name: str) -> None:
    await set_flow(http, queue_name, max_concurrency_per_key=2)
    await enqueue_keys(http, queue_name, [f"k{i}" for i in range(5)] + ["k0"])
    [leased] = await lease(http, queue_name)
    seen, cursor = [], None
    while True:
        page = (
            await http.get(
                f"/v1/queues/{queue_name}/keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [k["key"] for k in seen] == ["k0", "k1", "k2", "k3", "k4"]
    k0 = seen[0]
    assert (k0["ready"], k0["active"]) == ((1, 1) if leased["flow_key"] == "k0" else (2, 0))
    assert {"paused", "paused_until", "max_concurrency", "rate_limit"} <= k0.keys()
    bad = await http.get(f"/v1/queues/{queue_name}/keys", params={"cursor": "nope"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    unknown = (await http.get(f"/v1/queues/{queue_name}/keys/never-seen")).json()
    assert (unknown["ready"], unknown["active"], unknown["paused"]) == (0, 0, False)


async def test_bad_key_settings_are_422(http: httpx.AsyncClient, queue_name: str) -> None:
    for body in ({"max_concurrency": 0}, {"rate_limit": {"max": 0}}, {"paused": "maybe"}, {"other": 1}):
        answer = await http.patch(f"/v1/queues/{queue_name}/keys/a", json=body)
        assert answer.status_code == 422, body


async def test_metrics_count_keys_ready_at_their_limit_and_paused(http: httpx.AsyncClient, queue_name: str) -> None:
    await set_flow(http, queue_name, max_concurrency_per_key=1)
    await enqueue_keys(http, queue_name, ["a", "a", "b", "c"])
    await http.patch(f"/v1/queues/{queue_name}/keys/c", json={"paused": True})
    await lease(http, queue_name, 10)  # a and b, one each: both at their limit

    def sample(text: str, name: str) -> float | None:
        for line in text.splitlines():
            if line.startswith(f'{name}{{queue="{queue_name}"}}'):
                return float(line.split()[-1])
        return None

    async def counted() -> bool:
        text = (await http.get("/metrics")).text
        found = [sample(text, f"jobbroker_queue_keys_{n}") for n in ("ready", "at_limit", "paused")]
        return found == [2.0, 2.0, 1.0]  # ready: a (its second job) and c (paused, but has a ready job)

    await eventually(counted, within_s=15, every_s=0.5)


async def test_queue_limits_and_pause_still_hold_for_keyed_jobs(http: httpx.AsyncClient, queue_name: str) -> None:
    await http.patch(f"/v1/queues/{queue_name}", json={"max_concurrency": 2})
    await enqueue_keys(http, queue_name, ["a", "a", "b", "b", None])
    assert len(await lease(http, queue_name, 10)) == 2
    assert await lease(http, queue_name, 10) == []
    await http.patch(f"/v1/queues/{queue_name}", json={"max_concurrency": None, "paused": True})
    assert await lease(http, queue_name, 10) == []
    await http.patch(f"/v1/queues/{queue_name}", json={"paused": False})
    assert len(await lease(http, queue_name, 10)) == 3
