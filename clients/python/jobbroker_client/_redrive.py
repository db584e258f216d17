"""A redrive in progress, as `Client.redrive` and `AsyncClient.redrive` hand it back."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from . import _ops as ops
from ._models import RedriveStatus

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._client import Client


class Redrive:
    """A redrive: its last known `status`; `refresh()`, `wait()` and `cancel()` ask the broker again."""

    def __init__(self, client: Client, status: RedriveStatus) -> None:
        self._client = client
        self.status = status

    @property
    def id(self) -> str:
        return self.status.id

    @property
    def done(self) -> int:
        return self.status.done

    @property
    def total(self) -> int:
        return self.status.total

    @property
    def state(self) -> str:
        return self.status.state

    def refresh(self) -> RedriveStatus:
        self.status = self._client._run(ops.get_redrive(self.id))
        return self.status

    def cancel(self) -> RedriveStatus:
        self.status = self._client._run(ops.cancel_redrive(self.id))
        return self.status

    def wait(self, timeout: float | None = None, poll_seconds: float = 0.5) -> RedriveStatus:
        """Poll until the redrive is no longer running (or `timeout` seconds passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().finished:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(poll_seconds)
        return self.status

    def __repr__(self) -> str:
        return f"<Redrive {self.id} {self.state} {self.done}/{self.total}>"


class AsyncRedrive:
    """The asynchronous `Redrive`."""

    def __init__(self, client: AsyncClient, status: RedriveStatus) -> None:
        self._client = client
        self.status = status

    @property
    def id(self) -> str:
        return self.status.id

    @property
    def done(self) -> int:
        return self.status.done

    @property
    def total(self) -> int:
        return self.status.total

    @property
    def state(self) -> str:
        return self.status.state

    async def refresh(self) -> RedriveStatus:
        self.status = await self._client._run(ops.get_redrive(self.id))
        return self.status

    async def cancel(self) -> RedriveStatus:
        self.status = await self._client._run(ops.cancel_redrive(self.id))
        return self.status

    async def wait(self, timeout: float | None = None, poll_seconds: float = 0.5) -> RedriveStatus:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (await self.refresh()).finished:
            if deadline is not None and time.monotonic() >= deadline:
                break
            await asyncio.sleep(poll_seconds)
        return self.status

    def __repr__(self) -> str:
        return f"<AsyncRedrive {self.id} {self.state} {self.done}/{self.total}>"
