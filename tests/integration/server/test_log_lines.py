"""A real server logging as text: what clients send (a path with %0A, a worker id with a newline,
control characters) cannot forge a line, and a subscriber URL's ?token= and a signing secret never
reach the log."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from support import BrokerProcess, eventually, free_port

LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
FORGED = "2026-01-01 00:00:00.000 ERROR   jobbroker: forged"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
async def text_broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    broker = BrokerProcess(
        await fresh_database(),
        JOBBROKER_LOG_FORMAT="text",
        JOBBROKER_LOG_ACCESS="true",
        JOBBROKER_LOG_LEVEL="debug",
        JOBBROKER_PUSH__POLL_INTERVAL_S="0.2",
    )
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


def full_log(broker: BrokerProcess) -> str:
    return Path(broker.log.name).read_text(errors="replace")


def assert_one_record_a_line(output: str) -> None:
    for line in output.splitlines():
        assert LINE.match(line) or line.startswith("    "), f"a line that is no record: {line!r}"
        assert not line.startswith(FORGED[:10]) or LINE.match(line)
    assert "\nforged" not in output and f"\n{FORGED}" not in output


async def test_client_values_cannot_forge_lines(text_broker: BrokerProcess) -> None:
    queue = f"logs-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=text_broker.url, timeout=10) as client:
        await client.get(f"/v1/queues/{queue}%0A{FORGED.replace(' ', '%20')}/jobs")
        await client.get("/v1/jobs/1%0D%0A%1B[31m")
        assert (await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})).status_code == 201
        leased = await client.post(f"/v1/queues/{queue}/leases", json={"worker_id": f"w1\n{FORGED}\r\u2028x"})
        assert leased.status_code in (200, 422)
    await asyncio.sleep(0.5)
    output = full_log(text_broker)
    assert "%0A" not in output or "\\n" in output
    assert_one_record_a_line(output)
    assert "\\n2026-01-01" in output  # the escaped newline, on the line it came with


async def test_subscriber_urls_and_secrets_stay_out_of_the_log(text_broker: BrokerProcess) -> None:
    queue = f"push-{uuid.uuid4().hex[:8]}"
    url = f"http://user:pa55word@127.0.0.1:{free_port()}/hook?token=t0ps3cret"
    async with httpx.AsyncClient(base_url=text_broker.url, timeout=10) as client:
        refused = await client.post("/v1/subscriptions", json={"queue": queue, "url": url, "secret": SECRET})
        assert refused.status_code == 422  # credentials in the URL
        url = url.replace("user:pa55word@", "")
        created = await client.post("/v1/subscriptions", json={"queue": queue, "url": url, "secret": SECRET})
        assert created.status_code == 201, created.text
        job = (await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})).json()

        async def attempted() -> bool:
            return (await client.get(f"/v1/jobs/{job['id']}")).json()["attempts"] >= 1

        await eventually(attempted, within_s=15)
    await asyncio.sleep(0.5)
    output = full_log(text_broker)
    assert "t0ps3cret" not in output and "pa55word" not in output
    assert "MfKQ9r8" not in output
    assert_one_record_a_line(output)
