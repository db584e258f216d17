"""One LISTEN connection per process, handing "queue has ready jobs" out to waiting leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import asyncpg

from jobbroker.store.db import UNAVAILABLE, connect

CHANNEL = "jobbroker_ready"
log = logging.getLogger("jobbroker.notify")


class Waiter:
    """A long poll waiting for its queue: woken by at most one notification's wake-up at a time."""

    __slots__ = ("event", "queue", "relay", "woken")

    def __init__(self, queue: str) -> None:
        self.event = asyncio.Event()
        self.queue = queue
        # Holds a wake-up handed out by a notification and not yet used for a look.
        self.woken = False
        # The wake-up (held, or used by the last look) came from a notification without a count.
        self.relay = False


def parse(payload: str) -> tuple[str, int | None]:
    """A notification's queue and how many of its jobs became ready (None: not said, at least one).
    The insert trigger's is "<queue> <count> <time>": the time keeps NOTIFY from folding two equal
    counts of one transaction into one."""
    queue, _, rest = payload.partition(" ")
    count = rest.split(" ", 1)[0]
    return queue, int(count) if count.isdigit() else None


class ReadyHub:
    """Fans "queue has ready jobs" out to this process.

    Listeners (push runners, the subscription supervisor) are woken by every notification of their
    channel. Long polls wait in line per queue instead: a notification that `n` jobs became ready
    wakes the `n` longest-waiting ones, so an enqueue of one job wakes one of 3,000 waiting long
    polls instead of all of them. A notification that gives no count (an update trigger's: a
    retry, a release, a replay) wakes one, as a relay: if it takes a full batch it passes a
    wake-up on (see Broker._wait_for_jobs). A long poll that leaves without using its wake-up
    passes it on too, so no ready job is left to the fallback poll while a long poll waits.
    """

    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._schema = schema
        self._listeners: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        # Per queue, the long polls not holding a wake-up, longest-waiting first (dicts keep order).
        self._line: defaultdict[str, dict[Waiter, None]] = defaultdict(dict)
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
        """An event set by every notification for `queue`."""
        event = asyncio.Event()
        self._listeners[queue].add(event)
        return event

    def unregister(self, queue: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(queue)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[queue]

    def join(self, queue: str) -> Waiter:
        """Wait in `queue`'s line. Join before the first look: a notification meanwhile is not lost."""
        waiter = Waiter(queue)
        self._line[queue][waiter] = None
        return waiter

    def take(self, waiter: Waiter) -> bool:
        """Before a look: use the waiter's wake-up (whether it had one) and line up again for the next.
        After it, `waiter.relay` says whether the wake-up asks a full batch to pass one on."""
        waiter.event.clear()
        had = waiter.woken
        if had:
            waiter.woken = False
            self._line[waiter.queue][waiter] = None
        else:
            waiter.relay = False
        return had

    def leave(self, waiter: Waiter) -> None:
        """Leave the line; a wake-up not used for a look goes to the next in line."""
        line = self._line.get(waiter.queue)
        if line is not None:
            line.pop(waiter, None)
            if not line:
                del self._line[waiter.queue]
        if waiter.woken:
            waiter.woken = False
            self.pass_on(waiter.queue, relay=waiter.relay)

    def pass_on(self, queue: str, count: int = 1, relay: bool = True) -> None:
        """Wake the `count` longest-waiting long polls of `queue`."""
        line = self._line.get(queue)
        while line and count > 0:
            waiter = next(iter(line))
            del line[waiter]
            waiter.woken, waiter.relay = True, relay
            waiter.event.set()
            count -= 1
        if line is not None and not line:
            del self._line[queue]

    def _wake(self, queue: str, count: int | None) -> None:
        for event in self._listeners.get(queue, ()):
            event.set()
        self.pass_on(queue, 1 if count is None else count, relay=count is None)

    def _wake_all(self) -> None:
        for listeners in self._listeners.values():
            for event in listeners:
                event.set()
        for queue in list(self._line):
            self.pass_on(queue, len(self._line[queue]))

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._wake(*parse(payload))

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
