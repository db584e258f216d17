"""A private broker process per test, for crash and outage tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from support import BrokerProcess


@pytest.fixture
async def own_broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    broker = BrokerProcess(await fresh_database())
    await asyncio.to_thread(broker.start)
    yield broker
    await asyncio.to_thread(broker.stop)
