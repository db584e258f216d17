"""The one middleware every request passes first: it gives the request its id, refuses a missing
or unknown API key and an oversized body before the body is read, and records the HTTP metrics and
the access log line once the answer is out.

One ASGI layer instead of one per concern: each layer wrapped `send` or `receive` again, and the
layers together cost a worker's ack more CPU than the broker's work for it. The concerns themselves
stay in their modules (request_context, auth, limits, metrics).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobbroker.api import auth, limits
from jobbroker.api.request_context import HEADER, log_access, request_id
from jobbroker.keys import KeyRing
from jobbroker.logs import REQUEST_ID
from jobbroker.metrics import HttpMetrics

_HEADER = HEADER.lower().encode()


class Edge:
    def __init__(
        self, app: ASGIApp, keys: KeyRing, open_paths: frozenset[str], body_limits: limits.BodyLimits, access_log: bool
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = open_paths
        self.body_limits = body_limits
        self.access_log = access_log
        self.http_metrics = HttpMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        # What the client sees when the app fails before answering (the server error middleware's 500).
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_HEADER, rid.encode())]
            await send(message)

        try:
            max_bytes = self.body_limits.of(scope)
            refusal = auth.admit(self.keys, self.open_paths, scope) or limits.declared_too_large(scope, max_bytes)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, limits.capped(receive, max_bytes), send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self.http_metrics.record(scope["app"], scope["method"], scope["path"], status, seconds)
            if self.access_log:
                log_access(scope["method"], scope["path"], status, seconds)
            REQUEST_ID.reset(token)
