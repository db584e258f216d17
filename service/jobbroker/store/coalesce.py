"""Group commit for single-item calls: concurrent callers share one statement and one commit.

A naive worker acks one job per request; sixteen of them make sixteen commits where one would do.
The coalescer sends the first call at once (no added latency when idle); calls that arrive while
a batch is in flight wait for the next one, which takes all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """`submit(item)` answers `flush(batch)[i]` for the caller's item. At most `in_flight` batches
    run at once, each of at most `max_batch` items.

    A flush that raises one of `isolate` (a value the database refused: the statement changed
    nothing) is tried again item by item, so that only the callers whose items fail get the error;
    any other failure fails every caller in the batch."""

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[list[R]]],
        max_batch: int,
        in_flight: int,
        isolate: tuple[type[Exception], ...] = (),
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._isolate = isolate
        self._running = 0
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self._in_flight:
            self._running += 1
            # Started on the next loop pass, so that calls arriving in this one join the batch.
            asyncio.get_running_loop().call_soon(self._start)
        return await future

    def _start(self) -> None:
        task = asyncio.ensure_future(self._run())
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                await self._send(batch)
        finally:
            self._running -= 1

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) > 1 and isinstance(exc, self._isolate):
                for one in batch:
                    await self._send([one])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)
