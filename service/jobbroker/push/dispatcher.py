"""The push dispatcher, run by every replica: one runner per enabled subscription loops over
claim → sign → send → record, each delivery its own task, so a slow subscriber holds up nobody else.

Replicas coordinate only through Postgres. A claim locks the subscription's row, counts its active
jobs (worker id `push:<id>`, in every replica) and leases at most the room left under
`max_concurrency` through the ordinary lease path; the lease commits before the lock is released.
Runners wake on the ready hub's NOTIFY for their queue, when one of their deliveries ends, when the
next delayed job (a retry's backoff) comes due, and on a fallback poll: short while the subscription
is full (room freed in another replica sends no notification), the hub's safety net while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx

from jobbroker import events, metrics
from jobbroker.broker import Broker
from jobbroker.core.errors import DatabaseUnavailable, InvalidInput, JobNotFound, LeaseLost, PayloadTooLarge
from jobbroker.core.push import PushTarget
from jobbroker.push import delivery
from jobbroker.push.ssrf import NetworkPolicy, guarded_client
from jobbroker.settings import PushSettings

log = logging.getLogger("jobbroker.push")
# Not a possible queue name: the subscription table's trigger notifies the ready hub under it.
SUBSCRIPTIONS_CHANNEL = "@subscriptions"
# Jobs leased by one claim at most, however much room a subscription has.
CLAIM_BATCH = 100
# How far past a delayed job's run_at a runner wakes, so the job is surely due when it looks.
DUE_SLACK_S = 0.005
RECORD_TRIES = 3
STOP_TIMEOUT_S = 5.0
# Without the LISTEN connection, runners poll this often at least.
DEAF_POLL_S = 0.5


class Dispatcher:
    def __init__(self, broker: Broker, settings: PushSettings, client: httpx.AsyncClient | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.client = client or guarded_client(
            NetworkPolicy.from_settings(settings), settings.max_keepalive_connections
        )
        self.limits = delivery.Limits(
            max_result_bytes=min(settings.max_result_bytes, broker.settings.jobs.max_payload_bytes),
            error_body_chars=settings.error_body_chars,
            max_retry_after_s=settings.max_retry_after_s,
        )
        # Each claim holds one pooled connection for its lock while the lease takes another.
        self.claim_gate = asyncio.Semaphore(max(1, broker.settings.db.pool_max_size // 4))
        self.runners: dict[int, Runner] = {}
        self.deliveries: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._supervisor = asyncio.create_task(self._supervise(), name="jobbroker-push")

    async def stop(self) -> None:
        """Stop claiming, give deliveries in flight the grace period, then interrupt the rest."""
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for runner in list(self.runners.values()):
            await runner.stop()
        self.runners.clear()
        if self.deliveries:
            await asyncio.wait(set(self.deliveries), timeout=self.settings.shutdown_grace_s)
        for task in list(self.deliveries):
            task.cancel()
        await asyncio.gather(*self.deliveries, return_exceptions=True)
        await self.client.aclose()

    async def _supervise(self) -> None:
        changed = self.broker.hub.register(SUBSCRIPTIONS_CHANNEL)
        try:
            while True:
                changed.clear()
                try:
                    await self._refresh()
                except DatabaseUnavailable as exc:
                    log.warning("push: %s", exc.detail)
                except Exception:
                    log.exception("push: refreshing subscriptions failed")
                await wait_any([changed], self.settings.refresh_interval_s)
        finally:
            self.broker.hub.unregister(SUBSCRIPTIONS_CHANNEL, changed)

    async def _refresh(self) -> None:
        """One runner per enabled subscription; retired runners' deliveries still finish."""
        wanted = dict(await self.broker.subscriptions.enabled())
        for sid, runner in list(self.runners.items()):
            if wanted.get(sid) != runner.queue or runner.finished:
                del self.runners[sid]
                await runner.stop()
        for sid, queue in wanted.items():
            if sid not in self.runners:
                self.runners[sid] = Runner(self, sid, queue)

    def spawn(self, runner: Runner, target: PushTarget, job: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(target, job), name=f"jobbroker-push-{target.id}-{job['id']}")
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)
        task.add_done_callback(lambda _: runner.freed.set())

    async def _deliver(self, target: PushTarget, job: dict[str, Any]) -> None:
        try:
            outcome = await delivery.send(self.client, target, job, self.limits)
        except asyncio.CancelledError:
            interrupted = {"type": "interrupted", "message": "the broker shut down during the delivery"}
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    reason = metrics.push_failure_reason("error")
                    await self.broker.nack(int(job["id"]), job["lease_id"], interrupted, True, 0, reason)
            raise
        except Exception:
            log.exception("push: delivering job %s failed", job["id"])
            failed = {"type": "internal_error", "message": "the broker failed to deliver"}
            outcome = delivery.Outcome("error", error=failed)
        metrics.push_delivered(target.queue, outcome.status, outcome.seconds)
        await self._record(target, job, outcome)

    async def _record(self, target: PushTarget, job: dict[str, Any], outcome: delivery.Outcome) -> None:
        """Ack or nack; a lost lease means the reaper or an operator got there first."""
        job_id, lease_id = int(job["id"]), job["lease_id"]
        http_status = outcome.status if isinstance(outcome.status, int) else None
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                if outcome.ok:
                    await self._ack(job_id, lease_id, outcome.result, http_status)
                else:
                    assert outcome.error is not None
                    reason = metrics.push_failure_reason(outcome.status)
                    # A subscriber's Retry-After for a keyed job holds that key alone (backpressure).
                    pause_key = outcome.retry_in_s is not None and job.get("flow_key") is not None
                    await self.broker.nack(
                        job_id,
                        lease_id,
                        outcome.error,
                        True,
                        outcome.retry_in_s,
                        reason,
                        pause_key=pause_key,
                        http_status=http_status,
                    )
                    log.info(
                        "push: delivery failed",
                        extra={"job_id": job["id"], "subscription_id": str(target.id), "error": outcome.error["type"]},
                    )
                return
            except (LeaseLost, JobNotFound) as exc:
                log.warning("push: job %s: %s", job["id"], exc.detail)
                return
            except DatabaseUnavailable as exc:
                # Giving up leaves the lease to expire: the reaper then retries the job.
                log.warning("push: recording job %s (try %d): %s", job["id"], attempt, exc.detail)
                await asyncio.sleep(0.2 * attempt)
            except Exception:
                log.exception("push: recording job %s failed; its lease will expire", job["id"])
                return

    async def _ack(self, job_id: int, lease_id: str, result: Any, http_status: int | None) -> None:
        try:
            await self.broker.ack(job_id, lease_id, result, http_status=http_status)
        except (PayloadTooLarge, InvalidInput):
            # The answer fit in max_result_bytes as sent but not once re-encoded, or the database
            # refused a value in it: keep no result.
            await self.broker.ack(job_id, lease_id, None, http_status=http_status)


class Runner:
    """Claims and delivers one subscription's jobs in this replica."""

    def __init__(self, dispatcher: Dispatcher, subscription_id: int, queue: str) -> None:
        self.d = dispatcher
        self.id = subscription_id
        self.queue = queue
        self.freed = asyncio.Event()
        self.finished = False
        self.stopping = False
        self._task = asyncio.create_task(self._run(), name=f"jobbroker-push-{subscription_id}")

    async def stop(self) -> None:
        """Finish the claim under way (its jobs are then delivered), and claim no more."""
        self.stopping = True
        self.freed.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        ready = self.d.broker.hub.register(self.queue)
        try:
            while not self.stopping:
                ready.clear()
                self.freed.clear()
                target, leased = await self._claim_guarded()
                if target is None and leased is None:
                    self.finished = True
                    return
                full = target is None or len(leased or ()) >= target.room
                if (leased and not full) or self.stopping:
                    continue
                # Full: only room freed here (or, found by polling, in another replica) helps.
                events = [self.freed] if full else [ready, self.freed]
                await wait_any(events, await self._idle_s(full))
        finally:
            self.d.broker.hub.unregister(self.queue, ready)

    async def _claim_guarded(self) -> tuple[PushTarget | None, list[dict[str, Any]] | None]:
        """(None, None) once the subscription is gone; (None, []) after a failure, to be retried."""
        try:
            return await self._claim()
        except DatabaseUnavailable as exc:
            log.warning("push: subscription %d: %s", self.id, exc.detail)
        except Exception:
            log.exception("push: claiming for subscription %d failed", self.id)
        return None, []

    async def _claim(self) -> tuple[PushTarget | None, list[dict[str, Any]] | None]:
        async with self.d.claim_gate, self.d.broker.subscriptions.claim(self.id) as target:
            if target is None:
                return None, None
            if target.room == 0:
                return target, []
            jobs = await self.d.broker.jobs.lease(
                target.queue,
                target.worker_id,
                min(target.room, CLAIM_BATCH),
                target.timeout_s + self.d.settings.lease_margin_s,
                list(target.types) if target.types is not None else None,
            )
        events.leased(jobs)
        for job in jobs:
            self.d.spawn(self, target, job)
        return target, jobs

    async def _idle_s(self, full: bool) -> float:
        if full:
            return self.d.settings.poll_interval_s
        poll = self.d.broker.settings.lease.fallback_poll_s
        if not self.d.broker.hub.listening:
            poll = min(poll, DEAF_POLL_S)
        try:
            next_run_at = await self.d.broker.jobs.next_run_at(self.queue)
        except DatabaseUnavailable:
            return poll
        if next_run_at is None:
            return poll
        return min(poll, max(0.0, (next_run_at - datetime.now(UTC)).total_seconds()) + DUE_SLACK_S)


async def wait_any(events: Iterable[asyncio.Event], timeout: float) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
