"""One way to call a Client or an AsyncClient, so a single test covers both."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jobbroker_client as jb


class Either:
    """Calls a Client or an AsyncClient the same way, so one test covers both."""

    def __init__(self, client: jb.Client | jb.AsyncClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            answer = method(*args, **kwargs)
            return await answer if inspect.isawaitable(answer) else answer

        return call

    async def collect(self, name: str, **filters: Any) -> list[jb.Job]:
        iterator = getattr(self.client, name)(**filters)
        if inspect.isasyncgen(iterator):
            return [job async for job in iterator]
        return list(iterator)
