"""The worker: lease jobs in batches sized to free capacity, run handlers, heartbeat, ack or nack."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from . import _context as outcomes
from . import _tracing
from ._async_client import AsyncClient
from ._base import default_worker_id
from ._context import JobContext, Outcome
from ._exceptions import Conflict, JobbrokerError, NotFound, PayloadTooLarge, ServerError, TransportError
from ._models import BatchItemResult, LeasedJob

logger = logging.getLogger("jobbroker_client.worker")

Handler = Callable[[JobContext], Any]
H = TypeVar("H", bound=Handler)

# Errors after which leasing can go on once the broker recovers; anything else stops the worker.
TRANSIENT = (TransportError, ServerError, Conflict)
# Pause between empty leases when long-polling is off (wait_seconds=0), so as not to spin.
IDLE_POLL_SECONDS = 0.5
# How long a stopping worker waits for the answer of a lease already in flight (see _lease).
LATE_LEASE_ANSWER_S = 0.5


@dataclass
class WorkerStats:
    """Counts since `run` started."""

    leased: int = 0
    succeeded: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0  # acks and nacks the broker refused because the lease was gone


class Worker:
    """Runs handlers for the jobs of one queue until SIGTERM/SIGINT or `stop()`.

    Shutdown: stop leasing, give running handlers `shutdown_grace_seconds` to finish, hand the rest
    back with a release (their attempt returned) so another worker leases them at once.
    A second signal skips the grace period.
    """

    def __init__(
        self,
        base_url: str | None = None,
        queue: str | None = None,
        concurrency: int = 8,
        visibility_timeout_seconds: float = 30,
        api_key: str | None = None,
        *,
        worker_id: str | None = None,
        wait_seconds: float = 5,
        heartbeat_seconds: float | None = None,
        shutdown_grace_seconds: float = 25,
        types: list[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        queue = queue or os.environ.get("JOBBROKER_QUEUE")
        if not queue:
            raise ValueError("Worker needs a queue (or $JOBBROKER_QUEUE)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url
        self.api_key = api_key
        self.queue = queue
        self.concurrency = concurrency
        # The broker counts lease time in whole seconds.
        self.visibility_timeout_seconds = max(1, math.ceil(visibility_timeout_seconds))
        self.worker_id = worker_id or default_worker_id()
        self.wait_seconds = wait_seconds
        self.heartbeat_seconds = heartbeat_seconds or max(visibility_timeout_seconds / 3, 0.2)
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.types = types
        self.stats = WorkerStats()
        self._transport = transport
        self._handlers: dict[str, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested = False
        self._force_requested = False

    def handler(self, job_type: str) -> Callable[[H], H]:
        """Register the decorated function (sync or async) for jobs of `job_type`."""

        def register(fn: H) -> H:
            self.register(job_type, fn)
            return fn

        return register

    def register(self, job_type: str, fn: Handler) -> None:
        if job_type in self._handlers:
            raise ValueError(f"a handler for {job_type!r} is already registered")
        self._handlers[job_type] = fn

    def run(self) -> None:
        """Process jobs until SIGTERM, SIGINT or `stop()`, then shut down gracefully."""
        asyncio.run(self.run_async())

    def stop(self, force: bool = False) -> None:
        """Ask the worker to shut down; safe from any thread, a handler included."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop_requested = True
            self._force_requested = self._force_requested or force
            return
        # RuntimeError: the loop closed meanwhile, so the worker has already stopped.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._request_stop, force)

    async def run_async(self, *, install_signal_handlers: bool = True) -> None:
        """Like `run`, inside a running event loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._forced = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._settle_queue: asyncio.Queue[tuple[bool, dict[str, Any], asyncio.Future[None]]] = asyncio.Queue()
        self._unsettled: set[asyncio.Future[None]] = set()
        self._fatal: BaseException | None = None
        self.stats = WorkerStats()
        if self._stop_requested:
            self._request_stop(self._force_requested)
        self._stop_requested = self._force_requested = False
        restore = self._install_signal_handlers() if install_signal_handlers else None
        self._client = AsyncClient(self.base_url, self.api_key, transport=self._transport)
        logger.info("worker %s leasing from queue %r", self.worker_id, self.queue)
        settler = asyncio.create_task(self._settle_loop())
        try:
            try:
                await self._lease_loop()
            except asyncio.CancelledError:
                self._request_stop(force=True)
                await self._drain()
                raise
            await self._drain()
        finally:
            settler.cancel()
            await asyncio.gather(settler, return_exceptions=True)
            await self._client.aclose()
            if restore:
                restore()
            self._loop = None
        logger.info("worker %s stopped: %s", self.worker_id, self.stats)
        if self._fatal is not None:
            raise self._fatal

    def _request_stop(self, force: bool = False) -> None:
        if force or self._stopping.is_set():
            self._forced.set()
        self._stopping.set()
        self._slot_freed.set()

    def _install_signal_handlers(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            loop.add_signal_handler(sig, self._on_signal, sig)

        def restore() -> None:
            for sig in signals:
                loop.remove_signal_handler(sig)

        return restore

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stopping.is_set():
            logger.warning("%s again: releasing running jobs now", sig.name)
        else:
            logger.info(
                "%s: no new leases; running jobs get %ss to finish (signal again to release them now)",
                sig.name,
                self.shutdown_grace_seconds,
            )
        self._request_stop()

    # leasing

    async def _lease_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                jobs = await self._lease(free)
            except TRANSIENT as exc:
                failures += 1
                delay = min(0.25 * 2 ** min(failures, 6), 10.0)
                logger.warning("lease failed (%s); trying again in %.1fs", exc, delay)
                await self._sleep_unless_stopping(delay)
                continue
            except JobbrokerError as exc:
                logger.error("lease refused, stopping the worker: %s", exc)
                self._fatal = exc
                self._request_stop()
                return
            failures = 0
            for job in jobs:
                self._start(job)
            if not jobs and not self.wait_seconds:
                await self._sleep_unless_stopping(IDLE_POLL_SECONDS)

    async def _lease(self, max_jobs: int) -> list[LeasedJob]:
        # A stop ends a long-poll in flight, so the grace period starts at once instead of after
        # up to wait_seconds. The broker leases nothing for a request whose client has gone; jobs
        # it leased in the instant before the cancel come back when their visibility timeout ends.
        lease = asyncio.ensure_future(
            self._client.lease(
                self.queue,
                worker_id=self.worker_id,
                max_jobs=max_jobs,
                visibility_timeout_seconds=self.visibility_timeout_seconds,
                wait_seconds=self.wait_seconds,
                types=self.types,
            )
        )
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({lease, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if lease.done():
            return lease.result()
        # An answer already on its way holds jobs the broker has leased to this worker: wait a
        # moment for it and hand them back, rather than leave them until their visibility timeout.
        await asyncio.wait({lease}, timeout=LATE_LEASE_ANSWER_S)
        if not lease.done():
            lease.cancel()
        answered = await asyncio.gather(lease, return_exceptions=True)
        if isinstance(answered[0], list):
            await asyncio.gather(*(self._release(JobContext(job, self.worker_id)) for job in answered[0]))
        return []

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _start(self, job: LeasedJob) -> None:
        self.stats.leased += 1
        ctx = JobContext(job, self.worker_id)
        self._running[job.id] = asyncio.create_task(self._process(ctx), name=f"jobbroker-job-{job.id}")

    # one job

    async def _process(self, ctx: JobContext) -> None:
        beat = asyncio.create_task(self._heartbeat_loop(ctx))
        try:
            try:
                outcome = await self._invoke(ctx)
            except asyncio.CancelledError:
                outcome = outcomes.released(ctx)
            await self._settle(ctx, outcome)
        finally:
            beat.cancel()
            self._running.pop(ctx.id, None)
            self._slot_freed.set()

    async def _invoke(self, ctx: JobContext) -> Outcome:
        handler = self._handlers.get(ctx.type)
        if handler is None:
            return outcomes.no_handler(ctx, list(self._handlers))
        try:
            with _tracing.handler_span(ctx.job):
                if _is_async(handler):
                    result = await handler(ctx)
                else:
                    result = await self._in_thread(handler, ctx)
                    if inspect.isawaitable(result):
                        result = await result
        except Exception as exc:
            logger.info("job %s (%s) attempt %s failed: %r", ctx.id, ctx.type, ctx.attempt, exc)
            return outcomes.failure(exc)
        return outcomes.ack(result)

    async def _in_thread(self, fn: Handler, ctx: JobContext) -> Any:
        """Run a sync handler in a daemon thread, so one that never returns cannot block exit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def deliver(ok: bool, value: Any) -> None:
            if not future.done():
                future.set_result(value) if ok else future.set_exception(value)

        def target() -> None:
            try:
                outcome = (True, context.run(fn, ctx))
            except BaseException as exc:
                outcome = (False, exc)
            # RuntimeError: the worker has already shut down and released this job.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, *outcome)

        threading.Thread(target=target, name=f"jobbroker-job-{ctx.id}", daemon=True).start()
        return await future

    async def _heartbeat_loop(self, ctx: JobContext) -> None:
        # A job with a heartbeat timeout shorter than the worker's rhythm is beaten to it.
        every = self.heartbeat_seconds
        if ctx.job.heartbeat_timeout_seconds:
            every = min(every, max(ctx.job.heartbeat_timeout_seconds / 3, 0.1))
        while True:
            await asyncio.sleep(every)
            try:
                beat = await self._client.heartbeat(
                    ctx.id,
                    ctx.lease_id,
                    progress=ctx.progress,
                    visibility_timeout_seconds=self.visibility_timeout_seconds,
                )
            except (Conflict, NotFound) as exc:
                logger.warning("job %s lost its lease (%s); the handler should stop", ctx.id, exc.code)
                ctx.lease_lost = True
                ctx.cancel_event.set()
                return
            except JobbrokerError as exc:
                logger.warning("heartbeat for job %s failed: %s", ctx.id, exc)
                continue
            if beat.cancel_requested and not ctx.cancel_event.is_set():
                logger.info("job %s: cancellation requested", ctx.id)
                ctx.cancel_event.set()

    # acks and nacks, batched across jobs

    async def _settle(self, ctx: JobContext, outcome: Outcome) -> None:
        if ctx.lease_lost:
            self.stats.lost += 1
            return
        if outcome.released:
            await self._release(ctx)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settle_queue.put_nowait((outcome.ack, outcome.settle_item(ctx), done))
        if outcome.ack:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
        self._unsettled.add(done)
        done.add_done_callback(self._unsettled.discard)
        await asyncio.shield(done)

    async def _release(self, ctx: JobContext) -> None:
        """Give the job back with its attempt, so a shutdown never pushes a job toward the DLQ."""
        try:
            await self._client.release(ctx.id, ctx.lease_id)
            self.stats.released += 1
        except (JobbrokerError, *TRANSIENT) as exc:
            # The lease then simply expires and the job is leased again after its visibility timeout.
            logger.warning("release of job %s failed: %s", ctx.id, exc)
            self.stats.lost += 1

    async def _settle_loop(self) -> None:
        while True:
            batch = [await self._settle_queue.get()]
            while len(batch) < 1000 and not self._settle_queue.empty():
                batch.append(self._settle_queue.get_nowait())
            acks = [(item, done) for is_ack, item, done in batch if is_ack]
            nacks = [(item, done) for is_ack, item, done in batch if not is_ack]
            await asyncio.gather(self._send_batch(True, acks), self._send_batch(False, nacks))

    async def _send_batch(self, is_ack: bool, entries: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        if not entries:
            return
        items = [item for item, _ in entries]
        verb = "ack" if is_ack else "nack"
        try:
            results = await self._patiently(is_ack, items)
        except TRANSIENT as exc:
            logger.error("could not %s %d job(s): %s", verb, len(items), exc)
            results = []
        except JobbrokerError:
            # One bad item (a result over the size limit, say) refuses a whole batch: go one by one.
            results = [result for item in items for result in await self._send_one(is_ack, item)]
        for result in results:
            if not result.ok:
                self.stats.lost += 1
                logger.warning("%s of job %s refused: %s", verb, result.id, result.code)
        for _, done in entries:
            if not done.done():
                done.set_result(None)

    async def _patiently(self, is_ack: bool, items: list[dict[str, Any]]) -> list[BatchItemResult]:
        """Send a batch, resending through broker restarts until the leases would have expired."""
        send = self._client.ack_many if is_ack else self._client.nack_many
        deadline = time.monotonic() + self.visibility_timeout_seconds
        while True:
            try:
                return await send(items)
            except TRANSIENT:
                if time.monotonic() > deadline or self._forced.is_set():
                    raise
                await asyncio.sleep(0.5)

    async def _send_one(self, is_ack: bool, item: dict[str, Any]) -> list[BatchItemResult]:
        try:
            try:
                return await self._patiently(is_ack, [item])
            except PayloadTooLarge as exc:
                if not is_ack:
                    raise
                error = {"message": f"handler result refused: {exc.detail}", "type": "ResultTooLarge"}
                logger.warning("job %s: %s", item["id"], error["message"])
                nack = {"id": item["id"], "lease_id": item["lease_id"], "error": error, "retryable": False}
                return await self._patiently(False, [nack])
        except JobbrokerError as exc:
            logger.error("%s of job %s refused: %s", "ack" if is_ack else "nack", item["id"], exc)
            return [BatchItemResult(id=item["id"], ok=False, code=exc.code)]

    # shutdown

    async def _drain(self) -> None:
        if self._running:
            logger.info("waiting for %d running job(s)", len(self._running))
            everything = asyncio.gather(*self._running.values(), return_exceptions=True)
            forced = asyncio.ensure_future(self._forced.wait())
            waits: set[asyncio.Future[Any]] = {everything, forced}
            await asyncio.wait(waits, timeout=self.shutdown_grace_seconds, return_when=asyncio.FIRST_COMPLETED)
            forced.cancel()
        still = list(self._running.values())
        if still:
            logger.warning("releasing %d job(s) still running", len(still))
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self._unsettled:
            await asyncio.wait(set(self._unsettled), timeout=self.visibility_timeout_seconds)


def _is_async(fn: Handler) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
