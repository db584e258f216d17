"""Caps on request bodies, enforced before any parsing: by Content-Length up front, and by counting
the bytes of a body as it streams in (a chunked body has no Content-Length to refuse it by).

A body is parsed whole on the event loop, and a large one (a payload of millions of keys) stalls
every other request meanwhile, so the cap is the one of the route: a route taking one payload
(or result, progress, error) accepts what that payload may be, written loosely, plus its envelope;
only the batch routes accept up to `max_request_bytes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope

from jobbroker.api.problems import problem
from jobbroker.api.responses import ProblemJSON
from jobbroker.core.errors import PayloadTooLarge
from jobbroker.settings import Settings

# The routes whose body carries many payloads.
BATCH_PATHS = re.compile(r"/v1/(?:queues/[^/]+/jobs:batch|acks|nacks)")
# Room for a payload written with whitespace and escapes, and for the fields around it.
LOOSENESS = 2
ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class BodyLimits:
    single: int
    batch: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        single = LOOSENESS * settings.jobs.max_payload_bytes + ENVELOPE_BYTES
        return cls(single=min(single, settings.max_request_bytes), batch=settings.max_request_bytes)

    def of(self, scope: Scope) -> int:
        return self.batch if BATCH_PATHS.fullmatch(scope["path"]) else self.single


def declared_too_large(scope: Scope, max_bytes: int) -> ProblemJSON | None:
    """The 413 answer for a request whose Content-Length is over the cap, before a byte is read."""
    declared = Headers(scope=scope).get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        return problem(413, "payload_too_large", "Payload too large", _too_large(max_bytes))
    return None


def capped(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, failing with PayloadTooLarge once the body grows past the cap."""
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
