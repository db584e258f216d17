"""Push test helpers: a real HTTP receiver (a Starlette app served by uvicorn in this process), and API shortcuts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from support import free_port

Respond = Callable[["Received", int], Awaitable[Response]]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


async def ok(_request: Received, _n: int) -> Response:
    return JSONResponse({"ok": True})


def held_until(release: asyncio.Event, answer: Any = None) -> Respond:
    """A receiver that answers (`answer`, or {}) only once `release` is set."""

    async def held(_request: Received, _n: int) -> Response:
        await release.wait()
        return JSONResponse({} if answer is None else answer)

    return held


class Receiver:
    """Records every request, counts concurrent ones, and answers what `respond` says."""

    def __init__(self, respond: Respond = ok, port: int | None = None) -> None:
        self.respond = respond
        self.port = port or free_port()
        self.requests: list[Received] = []
        self.in_flight = 0
        self.peak = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        received = Received({k.lower(): v for k, v in request.headers.items()}, await request.body(), time.time())
        self.requests.append(received)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            response = await self.respond(received, len(self.requests))
        finally:
            self.in_flight -= 1
        await response(scope, receive, send)

    async def start(self) -> Receiver:
        config = uvicorn.Config(
            self,
            host="127.0.0.1",
            port=self.port,
            lifespan="off",
            ws="none",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the receiver did not start")
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task


async def subscribe(client: httpx.AsyncClient, queue: str, url: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/subscriptions", json={"queue": queue, "url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def enqueue(client: httpx.AsyncClient, queue: str, **fields: Any) -> dict[str, Any]:
    body = {"type": "t", "backoff": {"initial_seconds": 0.1, "multiplier": 1, "jitter": 0}, **fields}
    response = await client.post(f"/v1/queues/{queue}/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def job_in(client: httpx.AsyncClient, job_id: str, *states: str, within_s: float = 10) -> dict[str, Any]:
    """The job once it reaches one of `states`."""
    deadline = time.monotonic() + within_s
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job['state']}, not {states}, after {within_s}s: {job}")
        await asyncio.sleep(0.02)
