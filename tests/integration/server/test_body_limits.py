"""An oversized body is refused with a 413 problem before it is parsed, by its Content-Length or by
counting a chunked body as it streams, on the fast path and on the FastAPI path; a route taking one
payload refuses a body far larger than a payload may be even under the batch cap, so a flood of big
bodies (millions of keys) does not stall the event loop."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import psutil
import pytest

from jobbroker.api.limits import BodyLimits
from jobbroker.settings import Settings
from support import BrokerProcess

LIMITS = BodyLimits.from_settings(Settings())
# Over the one-payload cap, under the batch cap: refused only because the route takes one payload.
MID = LIMITS.single + 1024
assert LIMITS.batch > MID

JSON = "application/json"
PLUS_JSON = "application/vnd.example+json"  # not taken by the fast path: FastAPI answers it


def many_keys(size: int, prefix: bytes = b'{"type": "t", "payload": {') -> bytes:
    """A JSON body of about `size` bytes made of small keys (the costliest kind to parse)."""
    count = max(1, (size - len(prefix)) // 12)
    return prefix + b",".join(b'"k%08d":1' % i for i in range(count)) + b"}}"


def routes(queue: str) -> list[tuple[str, str, str]]:
    return [
        ("POST", f"/v1/queues/{queue}/jobs", JSON),  # fast path
        ("POST", f"/v1/queues/{queue}/jobs", PLUS_JSON),  # the same route through FastAPI
        ("POST", "/v1/jobs/1/ack", JSON),
        ("POST", "/v1/jobs/1/heartbeat", PLUS_JSON),
        ("POST", "/v1/schedules", JSON),  # FastAPI only
        ("PATCH", f"/v1/queues/{queue}", JSON),
    ]


async def chunks(body: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.fixture
async def client(broker_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_url, timeout=60) as client:
        yield client


def assert_413(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize("route", range(6))
async def test_a_body_over_the_route_cap_is_refused_by_length_and_when_chunked(
    client: httpx.AsyncClient, route: int
) -> None:
    queue = f"limits-{uuid.uuid4().hex[:8]}"
    method, path, content_type = routes(queue)[route]
    body = many_keys(MID)
    declared = await client.request(method, path, content=body, headers={"content-type": content_type})
    assert_413(declared)
    chunked = await client.request(method, path, content=chunks(body), headers={"content-type": content_type})
    assert "content-length" not in chunked.request.headers
    assert_413(chunked)
    assert (await client.get(f"/v1/queues/{queue}")).json().get("ready", 0) == 0


async def test_a_batch_may_be_larger_than_one_payload_but_not_than_the_request_cap(client: httpx.AsyncClient) -> None:
    queue = f"limits-{uuid.uuid4().hex[:8]}"
    payload = "x" * 100_000
    jobs = [{"type": "t", "payload": payload} for _ in range(LIMITS.single // 100_000 + 2)]
    accepted = await client.post(f"/v1/queues/{queue}/jobs:batch", json={"jobs": jobs})
    assert accepted.status_code == 201, accepted.text
    over = b'{"jobs": [' + b",".join([b'{"type": "t", "payload": "' + b"x" * 200_000 + b'"}'] * 50) + b"]}"
    assert len(over) > LIMITS.batch
    assert_413(await client.post(f"/v1/queues/{queue}/jobs:batch", content=chunks(over)))


FLOOD = """
import sys, threading, httpx
url, size = sys.argv[1], int(sys.argv[2])
count = (size - 30) // 12
body = b'{"type": "t", "payload": {' + b",".join(b'"k%08d":1' % i for i in range(count)) + b"}}"
def chunked():
    for i in range(0, len(body), 1 << 20):
        yield body[i : i + (1 << 20)]
statuses = []
def send(i):
    content = body if i % 2 else chunked()
    response = httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=60)
    statuses.append((response.status_code, response.json()["code"]))
threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(statuses)
"""


async def test_a_flood_of_huge_many_key_bodies_does_not_stall_healthz(
    client: httpx.AsyncClient, broker_url: str, broker_process: BrokerProcess
) -> None:
    """Parsed, these bodies cost about 0.8 s of the event loop each (8 at once stalled /healthz for
    8.8 s); refused unparsed, they cost the broker little CPU and /healthz answers throughout. The
    flood comes from another process, so the probes measure the broker, not this test's own loop."""
    assert broker_process.proc is not None
    broker = psutil.Process(broker_process.proc.pid)
    url = f"{broker_url}/v1/queues/limits-{uuid.uuid4().hex[:8]}/jobs"
    cpu = broker.cpu_times()
    size = 30 * 1024 * 1024  # under the old 32 MiB request cap
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, url, str(size), stdout=asyncio.subprocess.PIPE
    )
    output = asyncio.create_task(flood.communicate())
    probes = []
    while not output.done():
        started = time.monotonic()
        assert (await client.get("/healthz")).status_code == 200
        probes.append(time.monotonic() - started)
        await asyncio.sleep(0.02)
    statuses = (await output)[0].decode()
    assert flood.returncode == 0 and statuses.count("(413, 'payload_too_large')") == 8, statuses
    after = broker.cpu_times()
    spent = (after.user + after.system) - (cpu.user + cpu.system)
    print(
        f"\n8 x 30 MiB bodies of 2.6M keys: all 413; broker CPU {spent:.2f} s;"
        f" /healthz median {statistics.median(probes) * 1000:.0f} ms, max {max(probes) * 1000:.0f} ms"
        f" over {len(probes)} probes"
    )
    # Parsing them would take 6 s or more of CPU; the loose latency bound allows for a loaded machine.
    assert spent < 3.0
    assert max(probes) < 1.5
