"""Fixtures of the console tests: one seeded broker process and one Chromium for the module."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from console_support import ADMIN_KEY, ARTIFACTS, CHROMIUM, KEY_ENTRIES, chromium_missing, history, seed

from support import BrokerProcess


@pytest.fixture(scope="module")
async def console_broker(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    database_url = await fresh_database()
    await history(database_url)
    broker = BrokerProcess(database_url, JOBBROKER_API_KEYS=KEY_ENTRIES)
    await asyncio.to_thread(broker.start)
    broker.seeded = await seed(broker.url)  # type: ignore[attr-defined]
    yield broker
    await asyncio.to_thread(broker.stop)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any, console_broker: BrokerProcess, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A 1280×800 tab whose session already holds the admin key; the test's screenshot is kept."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console_broker.url)
    await context.add_init_script(f"sessionStorage.setItem('jobbroker.apiKey', {ADMIN_KEY!r})")
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / (re.sub(r"[^\w.-]+", "_", request.node.name).strip("_") + ".png")
    await tab.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await context.close()
    assert not errors, f"script errors on the page: {errors}"
