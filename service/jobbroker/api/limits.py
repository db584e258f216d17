"""A cap on request bodies, enforced while they stream in, before any parsing."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from jobbroker.api.problems import problem
from jobbroker.api.responses import ProblemJSON
from jobbroker.core.errors import PayloadTooLarge


def declared_too_large(scope: Scope, max_bytes: int) -> ProblemJSON | None:
    """The 413 answer for a request whose Content-Length is over the cap, before a byte is read."""
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return problem(413, "payload_too_large", "Payload too large", _too_large(max_bytes))
    return None


def capped(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, failing with PayloadTooLarge once the body grows past the cap (a chunked body has
    no Content-Length to refuse it by)."""
    seen = 0

    async def counting_receive() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            # Surfaces as a 413 problem (FastAPI wraps body errors; problems.py unwraps them).
            raise PayloadTooLarge(_too_large(max_bytes))
        return message

    return counting_receive


def _too_large(max_bytes: int) -> str:
    return f"the request body exceeds {max_bytes} bytes"
