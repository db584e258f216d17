"""One LISTEN connection per process, fanning "queue has ready jobs" out to waiting leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import asyncpg

from jobbroker.store.db import UNAVAILABLE, connect

CHANNEL = "jobbroker_ready"
log = logging.getLogger("jobbroker.notify")


class ReadyHub:
    """Waiters register per queue; a notification for that queue sets every waiter's event."""

    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._schema = schema
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.listening = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobbroker-ready-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    def register(self, queue: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[queue].add(event)
        return event

    def unregister(self, queue: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(queue)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[queue]

    def _wake(self, queue: str) -> None:
        for event in self._waiters.get(queue, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, queue: str) -> None:
        self._wake(queue)

    def _on_terminate(self, _conn: object) -> None:
        self._lost.set()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                self._conn = await connect(self._url, schema=self._schema)
                self._conn.add_termination_listener(self._on_terminate)
                await self._conn.add_listener(CHANNEL, self._on_notify)
                self.listening, delay = True, 0.1
                # Anything enqueued while we were deaf is found by a fresh lease attempt.
                self._wake_all()
                await self._watch()
            except UNAVAILABLE as exc:
                log.warning("ready hub: listen connection failed: %s", exc)
            self.listening = False
            self._wake_all()
            await self._close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _watch(self) -> None:
        """Return once the listening connection is gone (closed by the server or unresponsive)."""
        self._lost.clear()
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), timeout=10)
            if not self._lost.is_set() and self._conn is not None:
                await asyncio.wait_for(self._conn.execute("SELECT 1"), timeout=5)

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), timeout=2)
            self._conn = None
