"""Logs of a real `jobbroker serve`: every stdout line is one JSON object; each job event names its job,
queue, correlation id, worker and request id; no key, secret or payload is ever written, and no key
or secret shows in an answer after its creation."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobbroker import keys
from jobbroker.keys import Scope
from jobbroker.push import signing
from support import BrokerProcess, eventually

ADMIN_KEY = keys.generate()
WORKER_KEY = keys.generate()
WRONG_KEY = keys.generate()
WEBHOOK_SECRET = signing.generate_secret()
PAYLOAD_MARKER = f"payload-{uuid.uuid4().hex}"
RESULT_MARKER = f"result-{uuid.uuid4().hex}"
SECRETS = (ADMIN_KEY, WORKER_KEY, WRONG_KEY, WEBHOOK_SECRET)


@pytest.fixture(scope="module")
async def logged_broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    entries = ",".join([keys.entry(ADMIN_KEY, [Scope.ADMIN]), keys.entry(WORKER_KEY, [Scope.PRODUCE, Scope.CONSUME])])
    broker = BrokerProcess(
        await fresh_database(), JOBBROKER_API_KEYS=entries, JOBBROKER_LOG_ACCESS="true", JOBBROKER_LOG_JOB_EVENTS="true"
    )
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)


class Recorder:
    """A client that keeps every answer, to search them for secrets afterwards."""

    def __init__(self, base_url: str) -> None:
        self.answers: list[httpx.Response] = []
        self.c = httpx.AsyncClient(base_url=base_url, event_hooks={"response": [self._keep]})

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.answers.append(response)

    def as_(self, key: str, **headers: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", **headers}


def log_lines(broker: BrokerProcess) -> list[dict[str, Any]]:
    lines = [line for line in log_text(broker).splitlines() if line.strip()]
    assert lines, "the broker wrote no log"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}")
    return parsed


def log_text(broker: BrokerProcess) -> str:
    return Path(broker.log.name).read_text()


def events(lines: list[dict[str, Any]], job_id: str) -> dict[str, dict[str, Any]]:
    """The first line of each event of the job."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.get("job_id") == job_id and "event" in line:
            found.setdefault(line["event"], line)
    return found


async def test_job_events_are_json_lines_with_ids_and_no_secrets(logged_broker: BrokerProcess) -> None:
    r = Recorder(logged_broker.url)
    q = f"logs-{uuid.uuid4().hex[:8]}"
    async with r.c:
        enqueued = await r.c.post(
            f"/v1/queues/{q}/jobs",
            json={"type": "mail", "payload": {"note": PAYLOAD_MARKER}, "max_attempts": 2},
            headers=r.as_(WORKER_KEY, **{"X-Request-ID": "req-enqueue-1", "X-Correlation-ID": "corr-7"}),
        )
        assert enqueued.status_code == 201, enqueued.text
        assert enqueued.headers["X-Request-ID"] == "req-enqueue-1"
        job_id = enqueued.json()["id"]
        lease = await r.c.post(f"/v1/queues/{q}/leases", json={"worker_id": "w-42"}, headers=r.as_(WORKER_KEY))
        [job] = lease.json()["jobs"]
        assert job["correlation_id"] == "corr-7"
        generated = lease.headers["X-Request-ID"]
        assert generated and generated != "req-enqueue-1"
        nack = {"lease_id": job["lease_id"], "error": {"type": "Boom", "message": "x"}}
        assert (await r.c.post(f"/v1/jobs/{job_id}/nack", json=nack, headers=r.as_(WORKER_KEY))).status_code == 200
        await r.c.post(f"/v1/jobs/{job_id}/cancel", headers=r.as_(WORKER_KEY))  # forbidden: no admin scope
        await r.c.get("/v1/queues", headers=r.as_(WRONG_KEY))
        [job] = (
            await r.c.post(
                f"/v1/queues/{q}/leases", json={"worker_id": "w-43", "wait_seconds": 5}, headers=r.as_(WORKER_KEY)
            )
        ).json()["jobs"]
        ack = {"lease_id": job["lease_id"], "result": {"note": RESULT_MARKER}}
        assert (await r.c.post(f"/v1/jobs/{job_id}/ack", json=ack, headers=r.as_(WORKER_KEY))).status_code == 200

    async def logged() -> bool:
        return "acked" in events(log_lines(logged_broker), job_id)

    await eventually(logged)
    lines = log_lines(logged_broker)
    seen = events(lines, job_id)
    assert seen["enqueued"]["request_id"] == "req-enqueue-1"
    assert seen["enqueued"]["correlation_id"] == "corr-7"
    assert seen["enqueued"]["queue"] == q and seen["enqueued"]["type"] == "mail"
    assert seen["leased"]["worker_id"] == "w-42" and seen["leased"]["request_id"] == generated
    assert seen["nacked"]["error_type"] == "Boom" and seen["nacked"]["state"] == "retrying"
    assert seen["acked"]["worker_id"] == "w-43" and seen["acked"]["correlation_id"] == "corr-7"
    assert all(line["level"] in ("debug", "info", "warning", "error", "critical") for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines), "uvicorn's own lines are JSON too"
    assert any(line.get("logger") == "jobbroker.access" and line.get("status") == 403 for line in lines)

    text = log_text(logged_broker)
    for secret in (*SECRETS, PAYLOAD_MARKER, RESULT_MARKER):
        assert secret not in text
    for answer in r.answers:
        for secret in SECRETS:
            assert secret not in answer.text and secret not in str(answer.headers)


async def test_a_webhook_secret_shows_only_when_created(logged_broker: BrokerProcess) -> None:
    r = Recorder(logged_broker.url)
    admin = r.as_(ADMIN_KEY)
    async with r.c:
        body = {"queue": f"hooks-{uuid.uuid4().hex[:8]}", "url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}
        created = await r.c.post("/v1/subscriptions", json=body, headers=admin)
        assert created.status_code == 201, created.text
        assert created.json()["secret"] == WEBHOOK_SECRET
        sid = created.json()["id"]
        later = [
            await r.c.get(f"/v1/subscriptions/{sid}", headers=admin),
            await r.c.get("/v1/subscriptions", headers=admin),
            await r.c.patch(f"/v1/subscriptions/{sid}", json={"paused": True}, headers=admin),
        ]
    assert all(a.status_code == 200 for a in later)
    for answer in later:
        assert WEBHOOK_SECRET not in answer.text
    assert WEBHOOK_SECRET not in log_text(logged_broker)


async def test_an_unusable_request_id_is_replaced(logged_broker: BrokerProcess) -> None:
    async with httpx.AsyncClient(base_url=logged_broker.url) as c:
        answer = await c.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert answer.headers["X-Request-ID"] != "x" * 500 and len(answer.headers["X-Request-ID"]) == 32


async def test_by_default_only_the_warning_job_events_are_logged(fresh_database: Callable[[], Awaitable[str]]) -> None:
    """At the defaults a job's routine events (enqueued, leased, acked, nacked to retry) write no
    line; its move to the DLQ still does."""
    broker = BrokerProcess(await fresh_database())
    await asyncio.to_thread(broker.start)
    try:
        q = f"quiet-{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=broker.url) as c:
            acked = (await c.post(f"/v1/queues/{q}/jobs", json={"type": "t"})).json()["id"]
            dead = (await c.post(f"/v1/queues/{q}/jobs", json={"type": "t", "max_attempts": 1})).json()["id"]
            jobs = (await c.post(f"/v1/queues/{q}/leases", json={"worker_id": "w", "max_jobs": 2})).json()["jobs"]
            by_id = {j["id"]: j for j in jobs}
            ack = {"lease_id": by_id[acked]["lease_id"]}
            assert (await c.post(f"/v1/jobs/{acked}/ack", json=ack)).status_code == 200
            nack = {"lease_id": by_id[dead]["lease_id"], "error": {"message": "x"}}
            assert (await c.post(f"/v1/jobs/{dead}/nack", json=nack)).status_code == 200

        async def logged() -> bool:
            return "dead" in events(log_lines(broker), dead)

        await eventually(logged)
        lines = log_lines(broker)
        assert set(events(lines, dead)) == {"dead"}
        assert events(lines, acked) == {}
    finally:
        await asyncio.to_thread(broker.stop)
