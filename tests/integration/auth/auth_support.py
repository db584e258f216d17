"""An app with API keys configured: one key per scope set, and the keys' entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from jobbroker import keys
from jobbroker.app import create_app
from jobbroker.keys import Scope
from jobbroker.settings import Settings

# Each test key by the scopes it holds, "+"-joined as in a key entry.
KEYS = {name: keys.generate() for name in ("produce", "consume", "metrics", "read", "admin", "produce+consume")}
ENTRIES = ",".join(keys.entry(key, [Scope(s) for s in name.split("+")]) for name, key in KEYS.items())


def secured_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, api_keys=ENTRIES, **overrides)


def scopes(name: str) -> set[Scope]:
    return {Scope(s) for s in name.split("+")}


@pytest.fixture(scope="module")
async def secured_app(database_url: str) -> AsyncIterator[Any]:
    app = create_app(secured_settings(database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def secured(secured_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=secured_app), base_url="http://broker") as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
