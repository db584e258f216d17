"""W3C trace context on enqueue: stored with the job, returned on lease and by GET, through the
fast path and through FastAPI alike (a `+json` media type skips the fast path)."""

from __future__ import annotations

import uuid

import httpx
import pytest

FAST = {"Content-Type": "application/json"}
FRAMEWORK = {"Content-Type": "application/vnd.jobbroker+json"}
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
PATHS = pytest.mark.parametrize("media", [FAST, FRAMEWORK], ids=["fast-path", "fastapi"])


def queue() -> str:
    return f"tc-{uuid.uuid4().hex[:8]}"


async def post(client: httpx.AsyncClient, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return await client.post(path, content=httpx.Request("POST", "/", json=body).content, headers=headers)


async def lease_all(client: httpx.AsyncClient, q: str) -> list[dict]:
    answer = await client.post(f"/v1/queues/{q}/leases", json={"worker_id": "w", "max_jobs": 10})
    return sorted(answer.json()["jobs"], key=lambda j: int(j["id"]))


@PATHS
async def test_traceparent_header_is_stored_and_returned_on_lease_and_get(client, media) -> None:
    q = queue()
    headers = {**media, "traceparent": PARENT, "tracestate": "vendor=abc,other=1"}
    job = (await post(client, f"/v1/queues/{q}/jobs", {"type": "t"}, headers)).json()
    expected = {"traceparent": PARENT, "tracestate": "vendor=abc,other=1"}
    assert job["trace_context"] == expected
    [leased] = await lease_all(client, q)
    assert leased["trace_context"] == expected
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["trace_context"] == expected


@PATHS
async def test_batch_takes_the_header_for_every_job_and_a_body_context_per_job(client, media) -> None:
    q = queue()
    jobs = [{"type": "t"}, {"type": "t", "trace_context": {"traceparent": OTHER}}]
    answer = await post(client, f"/v1/queues/{q}/jobs:batch", {"jobs": jobs}, {**media, "traceparent": PARENT})
    assert answer.status_code == 201, answer.text
    assert [j["trace_context"] for j in answer.json()["jobs"]] == [{"traceparent": PARENT}, {"traceparent": OTHER}]
    assert [j["trace_context"] for j in await lease_all(client, q)] == [{"traceparent": PARENT}, {"traceparent": OTHER}]


@PATHS
@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        PARENT + "-extra",  # version 00 has exactly four fields
    ],
)
async def test_an_invalid_traceparent_header_is_ignored_as_the_spec_asks(client, media, traceparent) -> None:
    headers = {**media, "traceparent": traceparent, "tracestate": "vendor=abc"}
    answer = await post(client, f"/v1/queues/{queue()}/jobs", {"type": "t"}, headers)
    assert answer.status_code == 201 and answer.json()["trace_context"] is None


async def test_a_later_version_with_more_fields_is_kept(client) -> None:
    future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"
    answer = await client.post(f"/v1/queues/{queue()}/jobs", json={"type": "t"}, headers={"traceparent": future})
    assert answer.json()["trace_context"] == {"traceparent": future}


async def test_no_header_means_no_context(client) -> None:
    answer = await client.post(f"/v1/queues/{queue()}/jobs", json={"type": "t"}, headers={"tracestate": "a=b"})
    assert answer.status_code == 201 and answer.json()["trace_context"] is None


@PATHS
@pytest.mark.parametrize(
    "context",
    [
        {"traceparent": "nope"},
        {"tracestate": "a=b"},
        {"traceparent": PARENT, "x": 1},
        {"traceparent": PARENT, "tracestate": ""},
    ],
)
async def test_a_malformed_body_trace_context_is_a_422_naming_the_field(client, media, context) -> None:
    q = queue()
    answer = await post(client, f"/v1/queues/{q}/jobs", {"type": "t", "trace_context": context}, media)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "trace_context" in answer.text
    assert await lease_all(client, q) == []
