"""uvicorn's httptools protocol with deadlines on receiving a request.

uvicorn bounds only the idle time between two requests (`timeout_keep_alive`, and that timer is
reset by every byte received). A connection that sends nothing, or trickles its headers or body a
byte at a time, was held for ever, so a few thousand such clients used up the file descriptors.
Here each connection gets `header_timeout_s` from its start (and each further request from its
first byte) to finish its request line and headers, which may total `max_header_bytes`, then
`body_timeout_s` to finish the body; past either it is closed. Once a request is in, nothing
limits how long the answer takes, so long-poll leases wait as before. A request on a connection
beyond `max_connections` is answered 503 and the connection closed. The refusals here are
problem+json as every other answer (uvicorn's own are plain text).

uvicorn builds the protocol itself (in each worker process), so the limits are read from the
settings once per process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import httptools
import orjson
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobbroker.settings import ServerSettings, Settings

log = logging.getLogger("jobbroker.connections")


def _problem(status: int, code: str, title: str, detail: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(
        {"type": f"urn:jobbroker:problem:{code}", "title": title, "status": status, "detail": detail, "code": code}
    )
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    return body, headers


def _raw(status: int, reason: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}".encode(), *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_TIMEOUT_408 = _raw(
    408, "Request Timeout", *_problem(408, "request_timeout", "Request timeout", "the request did not arrive in time")
)
_HEADERS_431 = _raw(
    431,
    "Request Header Fields Too Large",
    *_problem(431, "headers_too_large", "Request headers too large", "the request line and headers are too large"),
)
_MALFORMED_400 = _raw(
    400, "Bad Request", *_problem(400, "bad_request", "Bad request", "the request is not valid HTTP/1.1")
)
_BUSY_BODY, _BUSY_HEADERS = _problem(
    503, "too_many_connections", "Too many connections", "the server holds as many connections as it may; retry later"
)


async def too_many_connections(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [*_BUSY_HEADERS, (b"retry-after", b"1")]})
    await send({"type": "http.response.body", "body": _BUSY_BODY})


@functools.cache
def limits() -> ServerSettings:
    return Settings().server


class HeadersTooLarge(Exception):
    """Raised from the parser's callback; httptools reports it as a parser error (a 400)."""


class BoundedHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits()
        self._deadline: asyncio.TimerHandle | None = None
        # "headers" until the request's headers are in, "body" until its body is, then "idle".
        self._phase = "headers"
        self._header_bytes = 0
        self._headers_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.header_timeout_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._phase, self._header_bytes = "headers", 0
            self._arm(self._limits.header_timeout_s, "headers")
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._arm(self._limits.body_timeout_s, "body")
        if len(self.connections) <= self._limits.max_connections:
            super().on_headers_complete()
            return
        # uvicorn starts the request's cycle with self.app: this one answers it 503.
        app, self.app = self.app, too_many_connections
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (and to headers over the cap), as a problem."""
        self.transport.write(_HEADERS_431 if self._headers_too_large else _MALFORMED_400)
        self.transport.close()

    def on_message_complete(self) -> None:
        self._phase = "idle"
        self._disarm()
        super().on_message_complete()

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._limits.max_header_bytes:
            self._headers_too_large = True
            raise HeadersTooLarge

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        log.debug("closing a connection whose request %s did not arrive in time", phase)
        # A request whose headers never completed has no answer under way: tell the client why.
        if phase == "headers" and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_TIMEOUT_408)
        self.transport.close()


# httptools wraps an exception raised in a callback; uvicorn answers any parser error with a 400.
assert issubclass(httptools.HttpParserCallbackError, httptools.HttpParserError)
