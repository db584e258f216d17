"""The lease reaper, the retention cleaner, the vacuum and the cron ticker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from jobbroker.core.errors import BrokerError, DatabaseUnavailable
from jobbroker.store.job import JobStore

if TYPE_CHECKING:
    from jobbroker.broker import Broker

log = logging.getLogger("jobbroker.maintenance")
REAP_BATCH = 1000


async def every(interval_s: float, step: Callable[[], Awaitable[int]], name: str) -> None:
    """Run `step` forever; a full batch runs again at once, a database outage waits and retries."""
    while True:
        try:
            done = await step()
        except DatabaseUnavailable as exc:
            log.warning("%s: %s", name, exc.detail)
            done = 0
        except Exception:
            log.exception("%s failed", name)
            done = 0
        if not done:
            await asyncio.sleep(interval_s)


def reaper(jobs: JobStore, on_expired: Callable[[list], None] | None = None) -> Callable[[], Awaitable[int]]:
    """Expired leases become failed attempts (`lease_expired`): retrying, or dead on the last attempt."""

    async def step() -> int:
        expired = await jobs.expire_leases(REAP_BATCH)
        # Logging and counting each expiry is the callback's: one place for every job event.
        if on_expired is not None and expired:
            on_expired(expired)
        return len(expired) if len(expired) == REAP_BATCH else 0

    return step


def cleaner(jobs: JobStore, batch: int) -> Callable[[], Awaitable[int]]:
    """Delete finished jobs past their queue's retention."""

    async def step() -> int:
        deleted = await jobs.delete_expired(batch)
        if deleted:
            log.info("retention deleted %d jobs", deleted)
        return deleted if deleted == batch else 0

    return step


def vacuumer(jobs: JobStore, dead_rows: int) -> Callable[[], Awaitable[int]]:
    """VACUUM the job table once it holds `dead_rows` dead versions, so leases stay fast."""

    async def step() -> int:
        if await jobs.dead_rows() >= dead_rows:
            await jobs.vacuum()
            log.debug("vacuumed the job table")
        return 0

    return step


def redriver(broker: Broker) -> Callable[[], Awaitable[int]]:
    """Replay the next due batch of a running redrive. Every replica runs this; a batch holds its
    redrive's row lock, so batches never overlap, and one that a crash cut short is undone whole."""

    async def step() -> int:
        return 1 if await broker.redrive_step() else 0

    return step


def cron_ticker(broker: Broker, batch: int = 100) -> Callable[[], Awaitable[int]]:
    """Fire the schedules that came due. Every replica runs this; the job's idempotency key and the
    schedule's compare-and-set make each fire time enqueue one job.

    Each fire is on its own: one that fails (a payload over the limit or a time zone that is no
    longer valid, stored before they were checked) is logged and its schedule moved to its next
    fire time, and the other schedules fire. Only an unreachable database stops the tick (to retry)."""

    async def step() -> int:
        due = await broker.schedules.due(batch)
        for schedule in due:
            try:
                await broker.fire_schedule(schedule)
            except DatabaseUnavailable:
                raise
            except Exception as exc:
                detail = exc.detail if isinstance(exc, BrokerError) else f"{type(exc).__name__}: {exc}"
                log.warning(
                    "schedule %s: the fire at %s enqueued nothing: %s",
                    schedule["name"],
                    schedule["next_run_at"].isoformat(),
                    detail,
                    extra={"schedule": schedule["name"]},
                    exc_info=not isinstance(exc, BrokerError),
                )
                await broker.postpone_schedule(schedule)
        return len(due) if len(due) == batch else 0

    return step
