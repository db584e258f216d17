"""The `receivers` fixture: real HTTP receivers for the dispatcher to call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from push_support import Receiver, Respond, ok


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Start receivers with `await receivers(respond, port=...)`; all stop after the test."""
    started: list[Receiver] = []

    async def start(respond: Respond = ok, port: int | None = None) -> Receiver:
        started.append(await Receiver(respond, port).start())
        return started[-1]

    yield start
    for receiver in started:
        await receiver.stop()
