"""The request id: taken from `X-Request-ID` (or made up), set for every log line written while the
request is served, and echoed in the answer. Optionally, one access log line per request."""

from __future__ import annotations

import logging
import re
import uuid

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


def log_access(method: str, path: str, status: int, seconds: float) -> None:
    access_log.info("%s %s %d", method, path, status, extra={"status": status, "duration_ms": round(seconds * 1000, 3)})
