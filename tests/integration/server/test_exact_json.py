"""Exact JSON against a real server, on the fast path and through FastAPI (a `+json` media type is
JSON to FastAPI but not one the fast path takes): every JSON value a client sends comes back as
the same value, and what JSON or Postgres cannot hold is a 422 naming its place."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

PATHS = {"fast": "application/json", "framework": "application/vnd.jobbroker+json"}
# Numbers a float would change: beyond 64 bits, beyond double range, more digits than a double holds.
EXACT = (
    b'{"big": 123456789012345678901234567890, "neg": -98765432109876543210987654321, "huge": 1e400,'
    b' "tiny": 1e-400, "tenth": 0.1, "long": 0.10000000000000000000001, "exp": 1E2, "max": 18446744073709551616,'
    b' "deep": [[{"x": 9007199254740993}]], "text": "\\ud83d\\ude00 \\u00e9"}'
)


def exact(value: Any) -> Any:
    """A JSON value with its numbers as Decimals: equal iff the same numbers (1e400 == 1000...0)."""
    text = value if isinstance(value, str | bytes) else json.dumps(value)
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def raw_json(response: httpx.Response) -> Any:
    return exact(response.content)


@pytest.fixture(params=list(PATHS))
def http(request: pytest.FixtureRequest, broker_url: str) -> httpx.Client:
    headers = {"content-type": PATHS[request.param]}
    with httpx.Client(base_url=broker_url, headers=headers, timeout=15) as client:
        yield client


def body(**fields: bytes | str) -> bytes:
    """A JSON object whose values are given as JSON text (so no Python float ever touches them)."""
    parts = [b'"%s": %s' % (k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in fields.items()]
    return b"{" + b", ".join(parts) + b"}"


def lease_one(http: httpx.Client, queue: str) -> dict[str, Any]:
    response = http.post(f"/v1/queues/{queue}/leases", content=b'{"worker_id": "w"}')
    [job] = response.json()["jobs"]
    return job


def test_payload_result_progress_and_error_details_come_back_exactly(http: httpx.Client) -> None:
    queue = f"exact-{uuid.uuid4().hex[:8]}"
    enqueued = http.post(f"/v1/queues/{queue}/jobs", content=body(type='"t"', payload=EXACT))
    assert enqueued.status_code == 201, enqueued.text
    assert raw_json(enqueued)["payload"] == exact(EXACT)
    leased = http.post(f"/v1/queues/{queue}/leases", content=b'{"worker_id": "w"}')
    [job] = raw_json(leased)["jobs"]
    assert job["payload"] == exact(EXACT)
    path, lease = f"/v1/jobs/{job['id']}", f'"{job["lease_id"]}"'
    beat = http.post(f"{path}/heartbeat", content=body(lease_id=lease, progress=EXACT))
    assert beat.status_code == 200, beat.text
    assert raw_json(http.get(path))["progress"] == exact(EXACT)
    failed = http.post(f"{path}/nack", content=body(lease_id=lease, error=b'{"message": "m", "details": %s}' % EXACT))
    assert failed.status_code == 200, failed.text
    assert raw_json(http.get(path))["errors"][0]["error"]["details"] == exact(EXACT)

    http.post(f"/v1/queues/{queue}/jobs", content=b'{"type": "t"}')
    again = lease_one(http, queue)
    acked = http.post(f"/v1/jobs/{again['id']}/ack", content=body(lease_id=f'"{again["lease_id"]}"', result=EXACT))
    assert acked.status_code == 200, acked.text
    assert raw_json(acked)["result"] == exact(EXACT)
    assert raw_json(http.get(f"/v1/jobs/{again['id']}"))["result"] == exact(EXACT)


def test_batch_enqueue_ack_and_nack_keep_values_exactly(http: httpx.Client) -> None:
    queue = f"exact-{uuid.uuid4().hex[:8]}"
    batch = http.post(
        f"/v1/queues/{queue}/jobs:batch", content=b'{"jobs": [%s, %s]}' % ((body(type='"t"', payload=EXACT),) * 2)
    )
    assert batch.status_code == 201, batch.text
    assert [j["payload"] for j in raw_json(batch)["jobs"]] == [exact(EXACT)] * 2
    jobs = http.post(f"/v1/queues/{queue}/leases", content=b'{"worker_id": "w", "max_jobs": 2}').json()["jobs"]
    first, second = jobs
    ack = body(id=f'"{first["id"]}"', lease_id=f'"{first["lease_id"]}"', result=EXACT)
    nack = body(id=f'"{second["id"]}"', lease_id=f'"{second["lease_id"]}"', error=b'{"details": %s}' % EXACT)
    assert http.post("/v1/acks", content=b"[%s]" % ack).json()["results"][0]["ok"] is True
    assert http.post("/v1/nacks", content=b"[%s]" % nack).json()["results"][0]["ok"] is True
    assert raw_json(http.get(f"/v1/jobs/{first['id']}"))["result"] == exact(EXACT)
    assert raw_json(http.get(f"/v1/jobs/{second['id']}"))["errors"][0]["error"]["details"] == exact(EXACT)


def test_a_schedule_payload_comes_back_exactly(broker_url: str) -> None:
    name = f"exact-{uuid.uuid4().hex[:8]}"
    schedule = body(name=f'"{name}"', cron='"0 0 1 1 *"', queue='"q"', type='"t"', payload=EXACT)
    created = httpx.post(f"{broker_url}/v1/schedules", content=schedule, headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    assert raw_json(created)["payload"] == exact(EXACT)
    assert raw_json(httpx.get(f"{broker_url}/v1/schedules/{name}"))["payload"] == exact(EXACT)
    httpx.delete(f"{broker_url}/v1/schedules/{name}")


REFUSED = {
    b"NaN": "NaN",
    b"Infinity": "Infinity",
    b"-Infinity": "-Infinity",
    b'"\\ud800"': "surrogate",
    b'"a\\udfffb"': "surrogate",
    b'"a\\u0000b"': "U+0000",
    b'{"\\u0000": 1}': "U+0000",
}


@pytest.mark.parametrize("value", list(REFUSED), ids=[v.decode() for v in REFUSED])
def test_values_json_or_postgres_cannot_hold_are_422_naming_the_field(http: httpx.Client, value: bytes) -> None:
    queue = f"refuse-{uuid.uuid4().hex[:8]}"
    nested = b'{"a": [1, %s]}' % value
    answer = http.post(f"/v1/queues/{queue}/jobs", content=body(type='"t"', payload=nested))
    assert_refused(answer, ["body", "payload", "a", 1], REFUSED[value])
    http.post(f"/v1/queues/{queue}/jobs", content=b'{"type": "t"}')
    job = lease_one(http, queue)
    path, lease = f"/v1/jobs/{job['id']}", f'"{job["lease_id"]}"'
    answer = http.post(f"{path}/ack", content=body(lease_id=lease, result=nested))
    assert_refused(answer, ["body", "result", "a", 1], REFUSED[value])
    answer = http.post(f"{path}/heartbeat", content=body(lease_id=lease, progress=nested))
    assert_refused(answer, ["body", "progress", "a", 1], REFUSED[value])
    answer = http.post(f"{path}/nack", content=body(lease_id=lease, error=b'{"details": %s}' % nested))
    assert_refused(answer, ["body", "error", "details", "a", 1], REFUSED[value])
    answer = http.post("/v1/acks", content=b"[%s]" % body(id=f'"{job["id"]}"', lease_id=lease, result=nested))
    assert_refused(answer, ["body", 0, "result", "a", 1], REFUSED[value])
    if value.startswith(b'"'):
        answer = http.post(f"/v1/queues/{queue}/leases", content=body(worker_id=value))
        assert_refused(answer, ["body", "worker_id"], REFUSED[value])
    assert http.get(path).json()["state"] == "active", "a refused request changed the job"
    assert sum(http.get(f"/v1/queues/{queue}").json()["counts"].values()) == 1


def assert_refused(answer: httpx.Response, loc: list[Any], what: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "validation_error"
    if loc[-1] == 1 and what == "U+0000" and problem["errors"][0]["loc"][-1] != 1:
        loc = [*loc, "\u0000"]  # the refused text was a key
    assert problem["errors"][0]["loc"] == loc and what in problem["errors"][0]["msg"], problem


@pytest.mark.parametrize("depth", [150, 250, 3000])
def test_nesting_is_kept_up_to_the_documented_depth_and_refused_beyond(http: httpx.Client, depth: int) -> None:
    queue = f"deep-{uuid.uuid4().hex[:8]}"
    payload = b"[" * depth + b"1" + b"]" * depth
    answer = http.post(f"/v1/queues/{queue}/jobs", content=body(type='"t"', payload=payload))
    if depth < 195:  # MAX_DEPTH (200) counts the body's own object too
        assert answer.status_code == 201, answer.text
        assert raw_json(answer)["payload"] == exact(payload)
    else:
        assert answer.status_code == 422, answer.text
        assert "nests deeper than 200 levels" in answer.json()["detail"]


async def test_a_value_postgres_refuses_fails_only_its_own_caller_among_concurrent_ones(broker_url: str) -> None:
    """Concurrent single enqueues and acks share statements; 1e200000 passes JSON but overflows
    Postgres's numeric: that caller alone gets a 422, which repeats nothing Postgres said."""
    queue = f"iso-{uuid.uuid4().hex[:8]}"
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=broker_url, headers=headers, timeout=15) as client:
        enqueue = f"/v1/queues/{queue}/jobs"
        payloads = [b'{"n": %d}' % i for i in range(10)]
        payloads.insert(5, b"1e200000")
        answers = await asyncio.gather(*(client.post(enqueue, content=body(type='"t"', payload=p)) for p in payloads))
        assert [a.status_code for a in answers] == [201] * 5 + [422] + [201] * 5
        refused = answers[5].json()
        assert refused["code"] == "validation_error" and "overflow" not in refused["detail"]
        assert "numeric" not in answers[5].text and "$" not in refused["detail"]
        leased = await client.post(f"/v1/queues/{queue}/leases", content=b'{"worker_id": "w", "max_jobs": 10}')
        jobs = leased.json()["jobs"]
        results = [b"1e200000" if i == 3 else b"%d" % i for i in range(len(jobs))]
        acks = await asyncio.gather(
            *(
                client.post(f"/v1/jobs/{j['id']}/ack", content=body(lease_id=f'"{j["lease_id"]}"', result=r))
                for j, r in zip(jobs, results, strict=True)
            )
        )
        assert [a.status_code for a in acks] == [200] * 3 + [422] + [200] * 6
        stats = (await client.get(f"/v1/queues/{queue}")).json()["counts"]
        assert stats["succeeded"] == 9 and stats["active"] == 1
