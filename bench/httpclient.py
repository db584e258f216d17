"""A lean HTTP/1.1 keep-alive client for the load generator: one request at a time per connection.

httpx costs ~150 µs of CPU per request; this costs a fraction of that, so the load generator
stays far from saturating its core and the broker, not the client, sets the pace.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson


class HTTPError(Exception):
    pass


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []


class Connection:
    """One keep-alive connection; `request` answers (status, parsed JSON body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._proto: _Protocol | None = None
        self._prefix = f"HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: "

    async def open(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, self._proto = await loop.create_connection(_Protocol, self.host, self.port)
        return self

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = b"" if body is None else orjson.dumps(body)
        head = f"{method} {path} {self._prefix}{len(raw)}\r\n\r\n".encode()
        proto = self._proto
        assert proto is not None and proto.transport is not None
        proto.waiter = asyncio.get_running_loop().create_future()
        proto.transport.write(head + raw)
        status, data = await proto.waiter
        return status, orjson.loads(data) if data else None

    async def post(self, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        status, answer = await self.request("POST", path, body)
        if status not in expect:
            raise HTTPError(f"POST {path}: {status} {answer}")
        return answer

    def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


async def connect_many(url: str, n: int) -> list[Connection]:
    host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
    return list(await asyncio.gather(*(Connection(host, int(port or 80)).open() for _ in range(n))))
