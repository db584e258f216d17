"""The broker's operations: the stores plus long-poll waiting. Routes call this and nothing below it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from jobbroker import events, metrics
from jobbroker.core import jsontext
from jobbroker.core.errors import InvalidInput, PayloadTooLarge
from jobbroker.core.models import DeadSelection, JobFilter, NewJob, Settle
from jobbroker.core.schedule import next_fire
from jobbroker.settings import Settings
from jobbroker.store import migrate
from jobbroker.store.audit import AuditStore
from jobbroker.store.db import Database, plain_url
from jobbroker.store.job import Job, JobStore
from jobbroker.store.notify import ReadyHub
from jobbroker.store.queue import QueueStore
from jobbroker.store.redrive import RedriveStore
from jobbroker.store.schedule import Schedule, ScheduleStore
from jobbroker.store.stats import StatsStore
from jobbroker.store.subscription import SubscriptionStore

# How far past a delayed job's run_at a waiter wakes, so the job is surely due when it looks.
DUE_SLACK_S = 0.005
# A paused or limited queue frees capacity without a notification (an ack), so waiters poll it.
LIMITED_POLL_S = 0.5
# Dead jobs per page of an export.
EXPORT_BATCH = 500
# A schedule whose next fire time cannot be computed is tried again this much later.
SCHEDULE_RETRY_S = 60


class Broker:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.jobs = JobStore(db, settings.jobs, settings.lease.default_visibility_timeout_s)
        self.queues = QueueStore(db)
        self.subscriptions = SubscriptionStore(db)
        self.schedules = ScheduleStore(db)
        self.audit = AuditStore(db)
        self.redrives = RedriveStore(db, self.jobs)
        listen_url = settings.db.listen_url
        self.hub = ReadyHub(plain_url(listen_url.get_secret_value()) if listen_url else db.url, db.schema)
        self.gauges = metrics.QueueGauges(StatsStore(db).queue_depth, settings.metrics.refresh_s)
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        await self.db.open()
        await self.hub.start()

    async def stop(self) -> None:
        self.stopping.set()
        await self.hub.stop()
        await self.db.close()

    async def enqueue(self, queue: str, jobs: list[NewJob]) -> list[tuple[Job, bool]]:
        for job in jobs:
            self.check_size(job.payload, "payload")
        answers = await self.jobs.enqueue(queue, jobs)
        events.enqueued([job for job, duplicate in answers if not duplicate])
        return answers

    def check_size(self, value: Any, what: str) -> None:
        limit = self.settings.jobs.max_payload_bytes
        if value is None:
            return
        try:
            size = len(jsontext.dumps(value))
        except (orjson.JSONEncodeError, ValueError) as exc:  # ValueError: an integer past Python's digit limit
            raise InvalidInput(f"the {what} cannot be stored as JSON") from exc
        if size > limit:
            raise PayloadTooLarge(f"the {what} exceeds {limit} bytes as JSON")

    async def lease(
        self,
        queue: str,
        worker_id: str,
        max_jobs: int,
        visibility_timeout_s: int | None,
        wait_s: float,
        types: list[str] | None,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[Job]:
        """Lease now, or wait up to `wait_s` for a notification or a delayed job to come due."""
        attempt = functools.partial(self.jobs.lease, queue, worker_id, max_jobs, visibility_timeout_s, types)
        if wait_s <= 0:
            jobs = await attempt()
        else:
            jobs = await self._wait_for_jobs(queue, wait_s, attempt, max_jobs, gone)
        events.leased(jobs)
        return jobs

    async def _wait_for_jobs(
        self,
        queue: str,
        wait_s: float,
        attempt: Callable[[], Awaitable[list[Job]]],
        max_jobs: int,
        gone: Callable[[], Awaitable[bool]] | None,
    ) -> list[Job]:
        """Look, then wait in the queue's line for a wake-up (see ReadyHub), a delayed job coming
        due or the fallback poll, and look again, until jobs are found or the wait is over."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_s, self.settings.lease.max_wait_s)
        # In line before the first look, so a notification landing meanwhile is not lost.
        waiter = self.hub.join(queue)
        try:
            jobs = await attempt()
            limited = not jobs and await self.jobs.is_limited(queue)
            while not jobs and not self.stopping.is_set():
                timeout = min(deadline - loop.time(), await self._until_due(queue), self._poll_s(limited))
                if timeout > 0:
                    await _wait(waiter.event, timeout)
                if self.stopping.is_set() or (gone is not None and await gone()):
                    return []
                woken = self.hub.take(waiter)
                if woken:
                    metrics.long_poll_woken(queue)
                jobs = await attempt()
                if woken and waiter.relay and len(jobs) >= max_jobs:
                    # A full batch after a notification without a count (an update trigger's):
                    # more may be ready, so the next in line looks too.
                    self.hub.pass_on(queue)
                if loop.time() >= deadline:
                    break
            return jobs
        finally:
            self.hub.leave(waiter)

    async def heartbeat(
        self, job_id: int, lease_id: str, visibility_timeout_s: int | None, progress: Any
    ) -> dict[str, Any]:
        self.check_size(progress, "progress")
        return await self.jobs.heartbeat(job_id, lease_id, visibility_timeout_s, progress)

    async def ack(self, job_id: int, lease_id: str, result: Any, http_status: int | None = None) -> Job:
        """Finish a leased job; a repeat of the same ack answers the job again and counts nothing.
        `http_status` is a push delivery's answer, kept in the attempt ledger."""
        self.check_size(result, "result")
        job, settled = await self.jobs.settle_ack(job_id, lease_id, result, http_status)
        if settled:
            events.acked([job])
        return job

    async def nack(
        self,
        job_id: int,
        lease_id: str,
        error: dict[str, Any],
        retryable: bool,
        retry_in_s: float | None,
        reason: str = metrics.ERROR,
        pause_key: bool = False,
        http_status: int | None = None,
    ) -> Job:
        """Fail an attempt. `reason` labels the failure in the metrics: `error` for a worker's nack,
        `metrics.push_failure_reason(status)` for a push delivery. `pause_key` also holds the job's
        flow key for `retry_in_s` (backpressure)."""
        self.check_size(error, "error")
        job, settled = await self.jobs.settle_nack(
            job_id, lease_id, error, retryable, retry_in_s, pause_key, http_status
        )
        if settled:
            events.nacked([job], reason, [error.get("type")])
        return job

    async def release(self, job_id: int, lease_id: str, delay_s: float | None) -> Job:
        """Give a leased job back unrun, returning its attempt; a repeat answers the job again."""
        job, released = await self.jobs.release(job_id, lease_id, delay_s)
        if released:
            events.released(job)
        return job

    async def ack_many(self, items: list[Settle]) -> list[dict[str, Any]]:
        for item in items:
            self.check_size(item.result, "result")
        results, rows = await self.jobs.settle_ack_many(items)
        events.acked(rows)
        return results

    async def nack_many(self, items: list[Settle]) -> list[dict[str, Any]]:
        for item in items:
            self.check_size(item.error, "error")
        results, rows = await self.jobs.settle_nack_many(items)
        error_types = {i.id: (i.error or {}).get("type") for i in items}
        events.nacked(rows, metrics.ERROR, [error_types.get(r["id"]) for r in rows])
        return results

    async def cancel(self, job_id: int) -> Job:
        job = await self.jobs.cancel(job_id)
        events.cancelled(job)
        return job

    async def replay(self, job_id: int) -> Job:
        job = await self.jobs.replay(job_id)
        events.replayed([job])
        return job

    async def replay_dead(self, selection: DeadSelection) -> int:
        counts = await self.jobs.replay_dead_by_queue(selection)
        events.replayed_in_bulk(counts)
        return sum(counts.values())

    async def purge_dead(self, selection: DeadSelection) -> int:
        counts = await self.jobs.purge_dead_by_queue(selection)
        events.purged_in_bulk(counts)
        return sum(counts.values())

    async def count_dead(self, selection: DeadSelection) -> int:
        """A dry run of a bulk replay or purge: how many jobs it would move."""
        return sum((await self.jobs.count_dead_by_queue(selection)).values())

    async def export_dead(self, where: JobFilter, batch: int = EXPORT_BATCH) -> AsyncIterator[list[Job]]:
        """Dead jobs newest first, a page at a time (keyset on id), so memory stays flat however many."""
        before_id = None
        while True:
            page = await self.jobs.list(where, before_id, batch)
            if page:
                yield page
            if len(page) < batch:
                return
            before_id = int(page[-1]["id"])

    async def redrive_step(self) -> bool:
        """One due batch of a running redrive, if any; true when there was one."""
        stepped = await self.redrives.step()
        if stepped is None:
            return False
        redrive, moved = stepped
        events.replayed_in_bulk(moved)
        if redrive["state"] != "running":
            events.redrive_ended(redrive)
        return True

    async def create_schedule(self, schedule: Schedule) -> Schedule:
        self.check_size(schedule["payload"], "payload")
        next_run_at = next_fire(schedule["cron"], schedule["timezone"], datetime.now(UTC))
        return await self.schedules.create({**schedule, "next_run_at": next_run_at})

    async def update_schedule(self, name: str, changes: dict[str, Any]) -> Schedule:
        """Apply `changes`; a new cron, time zone or pause state fires next from now (missed fires skipped)."""
        if "payload" in changes:
            self.check_size(changes["payload"], "payload")
        merged = {**await self.schedules.get(name), **changes}
        if changes.keys() & {"cron", "timezone", "paused"}:
            merged["next_run_at"] = next_fire(merged["cron"], merged["timezone"], datetime.now(UTC))
        return await self.schedules.update(merged)

    async def fire_schedule(self, schedule: Schedule) -> None:
        """Enqueue the job a due schedule names, once per fire time however many replicas try, then
        move the schedule to its next fire after now (fires missed while the broker was down collapse
        into this one)."""
        fired_at = schedule["next_run_at"]
        # First, so a schedule whose next fire cannot be computed enqueues nothing.
        next_run_at = next_fire(schedule["cron"], schedule["timezone"], max(fired_at, datetime.now(UTC)))
        job = NewJob(
            type=schedule["type"],
            payload=schedule["payload"],
            priority=schedule["priority"],
            max_attempts=schedule["max_attempts"],
            timeout_s=schedule["timeout_seconds"],
            idempotency_key=f"schedule:{schedule['name']}:{fired_at.isoformat()}",
            correlation_id=f"schedule:{schedule['name']}",
        )
        [(enqueued, _)] = await self.enqueue(schedule["queue"], [job])
        await self.schedules.advance(schedule["name"], fired_at, next_run_at, int(enqueued["id"]))

    async def postpone_schedule(self, schedule: Schedule) -> None:
        """Move a schedule whose fire failed to its next fire time, or a minute on when even that cannot
        be computed (a time zone no longer known), recording no run: it fails once per fire, not on
        every tick, and holds up no other schedule."""
        now = datetime.now(UTC)
        try:
            next_run_at = next_fire(schedule["cron"], schedule["timezone"], max(schedule["next_run_at"], now))
        except InvalidInput:
            next_run_at = now + timedelta(seconds=SCHEDULE_RETRY_S)
        await self.schedules.postpone(schedule["name"], schedule["next_run_at"], next_run_at)

    def expired(self, rows: list[Any]) -> None:
        """The reaper's callback: leases that ran out (stalled workers)."""
        events.expired(rows)

    def _poll_s(self, limited: bool) -> float:
        if limited or not self.hub.listening:
            return LIMITED_POLL_S
        return self.settings.lease.fallback_poll_s

    async def _until_due(self, queue: str) -> float:
        next_run_at = await self.jobs.next_run_at(queue)
        if next_run_at is None:
            return float("inf")
        return max(0.0, (next_run_at - datetime.now(UTC)).total_seconds()) + DUE_SLACK_S

    async def schema_is_current(self) -> bool:
        return await migrate.is_current(self.db)

    async def queue_stats(self, name: str) -> dict[str, Any]:
        found = await self.queues.stats(name)
        if found:
            return found[0]
        return QueueStore._one(name, None, None, datetime.now(UTC))


async def _wait(event: asyncio.Event, timeout: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
