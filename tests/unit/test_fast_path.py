"""The hot routes' fast path, in front of a stand-in for FastAPI: what it answers itself (well-formed
requests, through the route's own endpoint and the broker) and what it hands on, body intact."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from jobbroker import keys
from jobbroker.api import auth
from jobbroker.api.fastpath import FastPath
from jobbroker.app import create_app
from jobbroker.core.errors import LeaseLost
from jobbroker.keys import KeyRing, Scope
from jobbroker.settings import Settings

LEASE_ID = "7d9f2c1e-5b1a-4c47-9a57-2f0d3f6f8a11"


class FakeBroker:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: Exception | None = None

    async def ack(self, job_id: int, lease_id: str, result: Any) -> dict[str, Any]:
        self.calls.append(("ack", job_id, lease_id, result))
        if self.refuse is not None:
            raise self.refuse
        return {"id": str(job_id), "state": "succeeded"}

    async def lease(self, queue: str, worker_id: str, max_jobs: int, *args: Any, gone: Any = None) -> list[Any]:
        self.calls.append(("lease", queue, worker_id, max_jobs, await gone()))
        return []

    async def enqueue(self, queue: str, jobs: list[Any]) -> list[tuple[dict[str, Any], bool]]:
        self.calls.append(("enqueue", queue, [(j.type, j.correlation_id) for j in jobs]))
        return [({"id": "1", "type": j.type}, False) for j in jobs]


class Exchange:
    """One request through FastPath; the stand-in for FastAPI records what reaches it."""

    def __init__(self, key_ring: KeyRing | None = None) -> None:
        self.app = create_app(Settings(database_url="postgresql://unused/db"))
        self.broker = FakeBroker()
        self.app.state.broker = self.broker
        if key_ring is not None:
            self.app.state.keys = key_ring
        self.handed_on: list[bytes] = []

    async def framework(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.handed_on.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None, **scope: Any) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        sent: list[dict[str, Any]] = []
        chunks = [{"type": "http.request", "body": raw, "more_body": False}, {"type": "http.disconnect"}]

        async def receive() -> dict[str, Any]:
            return chunks.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        request = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "app": self.app,
            "query_string": b"",
            **scope,
        }
        await FastPath(self.framework)(request, receive, send)
        status = sent[0]["status"]
        content = b"".join(m.get("body", b"") for m in sent[1:])
        return status, orjson.loads(content) if content else None


async def test_a_well_formed_ack_is_answered_by_the_endpoint_without_the_framework() -> None:
    exchange = Exchange()
    status, answer = await exchange.post("/v1/jobs/42/ack", {"lease_id": LEASE_ID, "result": {"ok": 1}})
    assert (status, answer) == (200, {"id": "42", "state": "succeeded"})
    assert exchange.broker.calls == [("ack", 42, LEASE_ID, {"ok": 1})]
    assert exchange.handed_on == []


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/jobs/42/ack", {"result": 1}, {}),  # no lease_id
        ("/v1/jobs/42/ack", b'{"lease_id": ', {}),  # not JSON
        ("/v1/jobs/not-a-number/ack", {"lease_id": LEASE_ID}, {}),
        ("/v1/jobs/42/ack", {"lease_id": LEASE_ID}, {"Content-Type": "text/plain"}),
        # JSON to FastAPI, not to the fast path: test_fast_path_answers.py compares the two this way.
        ("/v1/jobs/42/ack", {"lease_id": LEASE_ID}, {"Content-Type": "application/vnd.jobbroker+json"}),
        ("/v1/queues/bad queue/leases", {"worker_id": "w"}, {}),
        ("/v1/queues/q/jobs", {"type": "t"}, {"X-Correlation-ID": "c" * 256}),
        ("/v1/jobs/42", {}, {}),  # not a hot route
    ],
)
async def test_anything_else_reaches_the_framework_with_its_body(path: str, body: Any, headers: dict[str, str]) -> None:
    exchange = Exchange()
    status, _ = await exchange.post(path, body, headers)
    assert status == 299
    assert exchange.handed_on == [body if isinstance(body, bytes) else orjson.dumps(body)]
    assert exchange.broker.calls == []


async def test_a_broker_refusal_is_the_same_problem_answer() -> None:
    exchange = Exchange()
    exchange.broker.refuse = LeaseLost("the lease is no longer held", state="active")
    status, answer = await exchange.post("/v1/jobs/42/ack", {"lease_id": LEASE_ID})
    assert status == 409
    assert answer == {
        "type": "urn:jobbroker:problem:lease_lost",
        "title": "Lease lost",
        "status": 409,
        "detail": "the lease is no longer held",
        "code": "lease_lost",
        "state": "active",
        "instance": "/v1/jobs/42/ack",
    }


async def test_path_headers_and_the_request_reach_the_endpoint() -> None:
    exchange = Exchange()
    status, answer = await exchange.post(
        "/v1/queues/emails/jobs", {"type": "send"}, {"Content-Type": "application/json", "X-Correlation-ID": "c-1"}
    )
    assert (status, answer) == (201, {"id": "1", "type": "send", "duplicate": False})
    status, answer = await exchange.post("/v1/queues/emails/leases", {"worker_id": "w1", "max_jobs": 3})
    assert (status, answer) == (200, {"jobs": []})
    # The lease's `gone` check reads the client's disconnect through the request it was given.
    assert exchange.broker.calls == [("enqueue", "emails", [("send", "c-1")]), ("lease", "emails", "w1", 3, True)]


async def test_a_key_without_the_route_scope_is_left_to_the_framework_to_refuse() -> None:
    producer, worker = keys.generate(), keys.generate()
    ring = KeyRing.parse(f"{keys.entry(producer, [Scope.PRODUCE])},{keys.entry(worker, [Scope.CONSUME])}")
    exchange = Exchange(ring)
    refused = {auth.API_KEY: ring.find(producer)}
    assert (await exchange.post("/v1/jobs/42/ack", {"lease_id": LEASE_ID}, **refused))[0] == 299
    allowed = {auth.API_KEY: ring.find(worker)}
    assert (await exchange.post("/v1/jobs/42/ack", {"lease_id": LEASE_ID}, **allowed))[0] == 200
    assert exchange.broker.calls == [("ack", 42, LEASE_ID, None)]
