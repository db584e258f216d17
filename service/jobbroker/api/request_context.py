"""The request id: taken from `X-Request-ID` (or made up), set for every log line written while the
request is served, and echoed in the answer. Optionally, one access log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobbroker.logs import REQUEST_ID

HEADER = "X-Request-ID"
# Printable ASCII without spaces, bounded: anything else is replaced, so logs stay one clean line.
_ACCEPTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")
access_log = logging.getLogger("jobbroker.access")


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for key, value in headers:
        if key == b"x-request-id":
            text = value.decode("latin-1")
            if _ACCEPTABLE.match(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContext:
    def __init__(self, app: ASGIApp, access: bool = False) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope["headers"])
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access:
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 3)},
                )
            REQUEST_ID.reset(token)
