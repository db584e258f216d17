"""Jobs: one method per named query in sql/job.sql, rows mapped to their public shape."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from jobbroker.core import jsontext
from jobbroker.core.errors import IdempotencyConflict, InvalidInput, InvalidState, JobNotFound, LeaseLost
from jobbroker.core.models import DeadSelection, JobFilter, NewJob, Settle
from jobbroker.core.states import JobState
from jobbroker.settings import JobDefaults
from jobbroker.store.coalesce import Coalescer
from jobbroker.store.db import Database
from jobbroker.store.queries import load
from jobbroker.store.queue_key import QueueKeyStore

# Coalesced single enqueues, leases and acks (see coalesce.py): at most this many calls per
# statement, and this many statements of a kind at once.
COALESCE_BATCH = 100
COALESCE_IN_FLIGHT = 2
# Only small leases coalesce: for them a statement's fixed cost dominates, while big ones sharing
# one statement would only serialize work that Postgres does in parallel.
COALESCE_MAX_JOBS = 10
DEADLOCK_RETRIES = 3
# How long a queue's flow mode (keyed jobs or not, fairness) is reused before it is looked up again.
FLOW_MODE_TTL_S = 1.0
# A fifo keyed lease looks at this many ready keyed jobs at the head of the queue (at least).
FIFO_WINDOW = 1000
FIFO_WINDOW_PER_JOB = 10

Q = load("job")
# Where a released job can be: a repeated release with the same lease answers it again.
RELEASED_STATES = (JobState.PENDING, JobState.RETRYING, JobState.CANCELLED)
QUEUE_Q = load("queue")
Job = dict[str, Any]
# (queue, types, visibility_timeout_s, worker_id, max_jobs): leases with equal first three coalesce.
LeaseAsk = tuple[str, tuple[str, ...] | None, int | None, str, int]


@dataclass(frozen=True, slots=True)
class FlowMode:
    keyed: bool  # waiting jobs with a flow key: leases take the keyed statements
    fifo: bool  # fairness fifo rather than round robin
    limited: bool  # some key has a concurrency or rate limit: keys are locked while leased


def public_job(row: asyncpg.Record) -> Job:
    """The API's view of a job row: string id, seconds for durations, the backoff as one object."""
    return {
        "id": str(row["id"]),
        "queue": row["queue"],
        "type": row["type"],
        "payload": row["payload"],
        "state": row["state"],
        "priority": row["priority"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "backoff": {
            "initial_seconds": row["backoff_initial_s"],
            "max_seconds": row["backoff_max_s"],
            "multiplier": row["backoff_multiplier"],
            "jitter": row["backoff_jitter"],
        },
        "timeout_seconds": row["timeout_s"],
        "run_at": row["run_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "correlation_id": row["correlation_id"],
        "idempotency_key": row["idempotency_key"],
        "tags": row["tags"],
        "flow_key": row["flow_key"],
        "heartbeat_timeout_seconds": row["heartbeat_timeout_s"],
        "max_runtime_seconds": row["max_runtime_s"],
        "result": row["result"],
        "errors": row["errors"],
        "cancel_requested": row["cancel_requested"],
        "progress": row["progress"],
        "worker_id": row["worker_id"],
        "lease_expires_at": row["lease_expires_at"],
        "trace_context": _trace_context(row["trace_context"]),
        "replays": row["replays"],
        "last_fingerprint": row["last_fingerprint"],
    }


def public_attempt(row: asyncpg.Record) -> dict[str, Any]:
    ended = row["ended_at"]
    return {
        "attempt": row["attempt"],
        "worker_id": row["worker_id"],
        "lease_id": str(row["lease_id"]) if row["lease_id"] is not None else None,
        "leased_at": row["leased_at"],
        "ended_at": ended,
        "heartbeats": row["heartbeats"],
        "outcome": row["outcome"],
        "error": row["error"],
        "fingerprint": row["fingerprint"],
        "http_status": row["http_status"],
        "duration_seconds": (ended - row["leased_at"]).total_seconds()
        if ended is not None and row["leased_at"] is not None
        else None,
    }


def _trace_context(value: orjson.Fragment | None) -> dict[str, str] | None:
    """The stored trace context as the dict push deliveries and spans read (jsonb arrives as text)."""
    return None if value is None else orjson.loads(orjson.dumps(value))


def leased_job(row: asyncpg.Record) -> Job:
    job = public_job(row)
    job["lease_id"] = str(row["lease_id"])
    job["attempt"] = row["attempts"]
    return job


class JobStore:
    def __init__(self, db: Database, defaults: JobDefaults, default_timeout_s: int) -> None:
        self.db = db
        self.defaults = defaults
        self.default_timeout_s = default_timeout_s
        self.ledger = defaults.attempt_ledger
        # A coalesced statement that Postgres refuses (one caller's value) is tried again call by
        # call, so only that caller fails; each flush is atomic, so a retried call did nothing yet.
        options = {"max_batch": COALESCE_BATCH, "in_flight": COALESCE_IN_FLIGHT, "isolate": (InvalidInput,)}
        self._acks = Coalescer(self._ack_each, **options)
        self._enqueues = Coalescer(self._enqueue_each, **options)
        self._leases = Coalescer(self._lease_each, **options)
        self.keys = QueueKeyStore(db)
        # Per queue: when looked at and its FlowMode; and the last key served (round robin).
        self._flow_modes: dict[str, tuple[float, FlowMode]] = {}
        self._cursors: dict[str, str] = {}
        self._flow_lookups: dict[str, asyncio.Future[FlowMode]] = {}

    async def enqueue(self, queue: str, jobs: list[NewJob]) -> list[tuple[Job, bool]]:
        """Insert jobs atomically; answers (job, duplicate) per input, in input order. An
        idempotency key that names a job of another type or payload fails the call (409), and a
        batch with one such job stores none. Concurrent single-job calls share a statement (see
        _enqueue_each)."""
        if len(jobs) == 1:
            answer = await self._enqueues.submit((queue, jobs[0]))
            if isinstance(answer, Exception):
                raise answer
            return [answer]
        # Only a repeated key can fail a batch after its statement inserted jobs.
        keyed = any(j.idempotency_key is not None for j in jobs)
        async with self.db.connection() as conn, _atomic(conn, keyed):
            answers = await self._insert(conn, queue, jobs)
            for answer in answers:
                if isinstance(answer, Exception):
                    raise answer
        return answers  # type: ignore[return-value]

    async def _enqueue_each(self, items: list[tuple[str, NewJob]]) -> list[tuple[Job, bool] | Exception]:
        """Concurrent single enqueues, one statement per queue, in one transaction when there are
        several (a refused one then undoes the others before the calls are tried one by one)."""
        groups: dict[str, list[int]] = {}
        for i, (queue, _) in enumerate(items):
            groups.setdefault(queue, []).append(i)
        answers: dict[int, tuple[Job, bool] | Exception] = {}
        async with self.db.connection() as conn, _atomic(conn, len(groups) > 1):
            for queue, members in groups.items():
                inserted = await self._insert(conn, queue, [items[i][1] for i in members])
                answers.update(zip(members, inserted, strict=True))
        return [answers[i] for i in range(len(items))]

    async def _insert(
        self, conn: asyncpg.Connection, queue: str, jobs: list[NewJob]
    ) -> list[tuple[Job, bool] | IdempotencyConflict]:
        d = self.defaults
        args = {
            "queue": queue,
            "types": [j.type for j in jobs],
            "payloads": [_json(j.payload) for j in jobs],
            "priorities": [j.priority for j in jobs],
            "run_ats": [j.run_at for j in jobs],
            "delays_s": [j.delay_s for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "backoff_initial_s": [j.backoff.initial_s for j in jobs],
            "backoff_max_s": [j.backoff.max_s for j in jobs],
            "backoff_multiplier": [j.backoff.multiplier for j in jobs],
            "backoff_jitter": [j.backoff.jitter for j in jobs],
            "timeouts_s": [j.timeout_s for j in jobs],
            "idempotency_keys": [j.idempotency_key for j in jobs],
            "correlation_ids": [j.correlation_id for j in jobs],
            "tags": [_json(list(j.tags)) for j in jobs],
            "flow_keys": [j.flow_key for j in jobs],
            "heartbeat_timeouts_s": [j.heartbeat_timeout_s for j in jobs],
            "max_runtimes_s": [j.max_runtime_s for j in jobs],
            "trace_contexts": [None if j.trace_context is None else _json(j.trace_context) for j in jobs],
            "default_max_attempts": d.max_attempts,
            "default_backoff_initial_s": d.backoff_initial_s,
            "default_backoff_max_s": d.backoff_max_s,
            "default_backoff_multiplier": d.backoff_multiplier,
            "default_backoff_jitter": d.backoff_jitter,
            "default_timeout_s": self.default_timeout_s,
        }
        if any(j.flow_key is not None for j in jobs):
            self._flow_modes.pop(queue, None)  # this queue leases through the keyed path now
        # One statement is atomic on its own; BEGIN and COMMIT would only add two round trips. The
        # re-read below takes a fresh snapshot either way (read committed).
        rows = await conn.fetch(Q["job_enqueue"].sql, *Q["job_enqueue"].args(args))
        answers: list[tuple[Job, bool] | IdempotencyConflict | None] = [None] * len(jobs)
        for row in rows:
            answers[row["ord"] - 1] = _enqueued(row)
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            q = Q["job_get_by_idempotency_keys"]
            found = {
                "queue": queue,
                "keys": [jobs[i].idempotency_key for i in missing],
                "types": [jobs[i].type for i in missing],
                "payloads": [args["payloads"][i] for i in missing],
            }
            for row in await conn.fetch(q.sql, *q.args(found)):
                answers[missing[row["ord"] - 1]] = _enqueued(row)
        return answers  # type: ignore[return-value]

    async def lease(
        self, queue: str, worker_id: str, max_jobs: int, visibility_timeout_s: int | None, types: list[str] | None
    ) -> list[Job]:
        """One lease attempt, no waiting. Limited queues lock their row so limits hold across replicas."""
        args = {
            "queue": queue,
            "worker_id": worker_id,
            "max_jobs": max_jobs,
            "visibility_timeout_s": visibility_timeout_s,
            "types": types,
            "limits_checked": False,
        }
        mode = await self._flow_mode(queue)
        if mode.keyed:
            return [leased_job(r) for r in await self._lease_keyed(queue, args, mode)]
        if max_jobs <= COALESCE_MAX_JOBS:
            ask = (queue, tuple(types) if types is not None else None, visibility_timeout_s, worker_id, max_jobs)
            rows = await self._leases.submit(ask)
        else:
            async with self.db.lease_connection() as conn:
                rows = await conn.fetch(Q["job_lease"].sql, *Q["job_lease"].args(args))
        if not rows:
            mode = await self._flow_mode(queue, fresh=True)
            if mode.keyed:
                return [leased_job(r) for r in await self._lease_keyed(queue, args, mode)]
            rows = await self._lease_limited(queue, args, self._lease_unkeyed)
        rows = sorted(rows, key=lambda r: (r["priority"], r["run_at"], r["id"]))
        return [leased_job(r) for r in rows]

    async def _flow_mode(self, queue: str, fresh: bool = False) -> FlowMode:
        """How the queue leases, looked up at most once a FLOW_MODE_TTL_S. A stale answer is safe:
        the unkeyed statement never takes a keyed job and the lock-free keyed one never takes a
        limited key's, so it only delays those jobs until the next look."""
        now = time.monotonic()
        cached = self._flow_modes.get(queue)
        if not fresh and cached is not None and now - cached[0] < FLOW_MODE_TTL_S:
            return cached[1]
        # Concurrent callers share one look-up, and so resume together (the lease coalescer
        # batches calls that arrive in one loop pass).
        lookup = self._flow_lookups.get(queue)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up_flow_mode(queue, now))
            self._flow_lookups[queue] = lookup
            lookup.add_done_callback(lambda _: self._flow_lookups.pop(queue, None))
        return await asyncio.shield(lookup)

    async def _look_up_flow_mode(self, queue: str, now: float) -> FlowMode:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["job_flow_mode"].sql, queue)
        mode = FlowMode(row["keyed"], row["fifo"], row["limited"])
        self._flow_modes[queue] = (now, mode)
        return mode

    async def _lease_keyed(self, queue: str, args: dict[str, Any], mode: FlowMode) -> list[asyncpg.Record]:
        """Per-key limits and fairness; a paused or limited queue through its lock."""
        statement = functools.partial(self._lease_keyed_statement, mode=mode)
        async with self.db.lease_connection() as conn:
            rows = await statement(conn, args)
        if not rows:
            rows = await self._lease_limited(queue, args, statement)
        return rows

    async def _lease_keyed_statement(
        self, conn: asyncpg.Connection, args: dict[str, Any], mode: FlowMode
    ) -> list[asyncpg.Record]:
        """Find the keys to take from, then take their jobs. Where keys have limits they are locked
        first and their jobs taken with a snapshot from after the lock (so each key's active jobs
        are counted exactly), in one transaction."""
        locking = mode.fifo or mode.limited
        if locking and not conn.is_in_transaction():
            async with conn.transaction():
                return await self._lease_keyed_statement(conn, args, mode)
        queue = args["queue"]
        after = self._cursors.get(queue, "")
        extra: dict[str, Any]
        if mode.fifo:
            find, take = Q["job_lease_keyed_fifo_lock"], Q["job_lease_keyed_fifo_take"]
            extra = {"window": max(FIFO_WINDOW, FIFO_WINDOW_PER_JOB * args["max_jobs"])}
        else:
            find = Q["job_lease_keyed_lock"] if mode.limited else Q["job_lease_keyed_scan"]
            take = Q["job_lease_keyed_take"]
            extra = {"after": after}
        values = {**args, **extra}
        keys = await conn.fetch(find.sql, *find.args({k: v for k, v in values.items() if k in find.params}))
        take_args = {
            **{k: v for k, v in values.items() if k in take.params},
            "keys": [k["key"] for k in keys],
            "max_concurrencies": [k["max_concurrency"] for k in keys],
            "rate_maxes": [k["rate_max"] for k in keys],
            "rate_pers_s": [k["rate_per_s"] for k in keys],
        }
        rows = await conn.fetch(take.sql, *take.args(take_args))
        served = [r["flow_key"] for r in rows if r["flow_key"] is not None]
        if served and not mode.fifo:
            wrapped = [k for k in served if k <= after]
            self._cursors[queue] = max(wrapped) if wrapped else max(served)
        return sorted(rows, key=lambda r: (r["priority"], r["run_at"], r["id"]))

    async def _lease_unkeyed(self, conn: asyncpg.Connection, args: dict[str, Any]) -> list[asyncpg.Record]:
        return await conn.fetch(Q["job_lease"].sql, *Q["job_lease"].args(args))

    async def _lease_each(self, asks: list[LeaseAsk]) -> list[list[asyncpg.Record]]:
        """Concurrent leases, one statement per (queue, types, visibility timeout)."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, ask in enumerate(asks):
            groups.setdefault(ask[:3], []).append(i)
        dealt: list[list[asyncpg.Record]] = [[] for _ in asks]
        q = Q["job_lease_each"]
        async with self.db.lease_connection() as conn, _atomic(conn, len(groups) > 1):
            for (queue, types, visibility_timeout_s), members in groups.items():
                args = {
                    "queue": queue,
                    "types": list(types) if types is not None else None,
                    "visibility_timeout_s": visibility_timeout_s,
                    "worker_ids": [asks[i][3] for i in members],
                    "max_jobs": [asks[i][4] for i in members],
                    "total": sum(asks[i][4] for i in members),
                }
                for row in await conn.fetch(q.sql, *q.args(args)):
                    dealt[members[row["taker"] - 1]].append(row)
        return dealt

    async def _lease_limited(
        self,
        queue: str,
        args: dict[str, Any],
        statement: Callable[[asyncpg.Connection, dict[str, Any]], Awaitable[list[asyncpg.Record]]],
    ) -> list[asyncpg.Record]:
        async with self.db.lease_connection() as conn, conn.transaction():
            limits = await conn.fetchrow(QUEUE_Q["queue_lock_limits"].sql, queue)
            if limits is None:
                return []  # paused, or unlimited and the plain lease already found nothing
            allowance = args["max_jobs"]
            if limits["max_concurrency"] is not None:
                active = await conn.fetchval(Q["job_count_active"].sql, queue)
                allowance = min(allowance, limits["max_concurrency"] - active)
            if limits["rate_limit_per_s"] is not None:
                allowance = min(allowance, int(limits["rate_tokens"]))
            if allowance <= 0:
                return []
            rows = await statement(conn, {**args, "max_jobs": allowance, "limits_checked": True})
            if rows and limits["rate_limit_per_s"] is not None:
                spend = QUEUE_Q["queue_spend_tokens"]
                await conn.execute(spend.sql, *spend.args({"name": queue, "spent": len(rows)}))
            return rows

    async def next_run_at(self, queue: str) -> Any:
        async with self.db.connection() as conn:
            return await conn.fetchval(Q["job_next_run_at"].sql, queue)

    async def is_limited(self, queue: str) -> bool:
        async with self.db.connection() as conn:
            rows = await conn.fetch(QUEUE_Q["queue_configs"].sql, queue)
        return bool(rows) and (
            rows[0]["paused"] or rows[0]["max_concurrency"] is not None or rows[0]["rate_limit_per_s"] is not None
        )

    async def heartbeat(
        self, job_id: int, lease_id: str, visibility_timeout_s: int | None, progress: Any
    ) -> dict[str, Any]:
        q = Q["job_heartbeat"]
        args = {"id": job_id, "lease_id": lease_id, "visibility_timeout_s": visibility_timeout_s, "progress": progress}
        async with self.db.connection() as conn:
            row = await conn.fetchrow(q.sql, *q.args(args))
            if row is None:
                await self._raise_settle_failure(conn, job_id)
        return {
            "id": str(row["id"]),
            "lease_expires_at": row["lease_expires_at"],
            "cancel_requested": row["cancel_requested"],
        }

    async def ack(self, job_id: int, lease_id: str, result: Any) -> Job:
        return (await self.settle_ack(job_id, lease_id, result))[0]

    async def settle_ack(
        self, job_id: int, lease_id: str, result: Any, http_status: int | None = None
    ) -> tuple[Job, bool]:
        """The job, and whether this call acked it (false for a repeat of an earlier ack).
        Concurrent acks share one statement (see coalesce.py). A miss, or a lease id no job could
        hold, takes the single-ack path, which tells a repeated ack from a stale lease."""
        lease = _uuid(lease_id)
        if lease is not None:
            row = await self._acks.submit((job_id, lease, result, http_status))
            if row is not None:
                return public_job(row), True
        async with self.db.connection() as conn:
            args = {"id": job_id, "lease_id": lease_id, "result": result, "http_status": http_status}
            row = await conn.fetchrow(Q["job_ack"].sql, *Q["job_ack"].args({**args, "ledger": self.ledger}))
            if row is not None:
                return public_job(row), True
            row = await self._already_settled(conn, job_id, lease_id, JobState.SUCCEEDED)
        return public_job(row), False

    async def _ack_each(self, items: list[tuple[int, UUID, Any, int | None]]) -> list[asyncpg.Record | None]:
        q = Q["job_ack_each"]
        args = {
            "ids": [item[0] for item in items],
            "lease_ids": [item[1] for item in items],
            "results": [None if item[2] is None else _json(item[2]) for item in items],
            "http_statuses": [item[3] for item in items],
            "ledger": self.ledger,
        }
        for attempt in range(DEADLOCK_RETRIES):
            try:
                async with self.db.connection() as conn:
                    rows = await conn.fetch(q.sql, *q.args(args))
                break
            except asyncpg.DeadlockDetectedError:
                # Only a repeated ack racing its original in another batch locks rows in another order.
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
        # A repeat of an item in the same batch gets no row: the single-ack path answers it as a repeat.
        acked = {(r["id"], r["lease_id"]): r for r in rows}
        return [acked.pop((item[0], item[1]), None) for item in items]

    async def nack(
        self,
        job_id: int,
        lease_id: str,
        error: dict[str, Any],
        retryable: bool,
        retry_in_s: float | None,
        pause_key: bool = False,
    ) -> Job:
        return (await self.settle_nack(job_id, lease_id, error, retryable, retry_in_s, pause_key))[0]

    async def settle_nack(
        self,
        job_id: int,
        lease_id: str,
        error: dict[str, Any],
        retryable: bool,
        retry_in_s: float | None,
        pause_key: bool = False,
        http_status: int | None = None,
    ) -> tuple[Job, bool]:
        """The job, and whether this call nacked it (false for a repeat of an earlier nack). With
        `pause_key`, the job's flow key (if it has one) is paused for `retry_in_s`, in the same
        transaction: backpressure for that key alone."""
        args = {
            "http_status": http_status,
            "ledger": self.ledger,
            "id": job_id,
            "lease_id": lease_id,
            "error": error,
            "retryable": retryable,
            "retry_in_s": retry_in_s,
            "keep_errors": self.defaults.error_history,
        }
        async with self.db.connection() as conn, _atomic(conn, pause_key):
            row = await conn.fetchrow(Q["job_nack"].sql, *Q["job_nack"].args(args))
            if row is not None:
                if pause_key and retry_in_s and row["flow_key"] is not None:
                    await self.keys.pause_for(conn, [(row["queue"], row["flow_key"], retry_in_s)])
                return public_job(row), True
            row = await self._already_settled(conn, job_id, lease_id, None)
        return public_job(row), False

    async def release(self, job_id: int, lease_id: str, delay_s: float | None) -> tuple[Job, bool]:
        """The job given back unrun, and whether this call released it (false for a repeat)."""
        q = Q["job_release"]
        async with self.db.connection() as conn:
            args = {"id": job_id, "lease_id": lease_id, "delay_s": delay_s, "ledger": self.ledger}
            row = await conn.fetchrow(q.sql, *q.args(args))
            if row is not None:
                return public_job(row), True
            row = await self._already_settled(conn, job_id, lease_id, RELEASED_STATES)
        return public_job(row), False

    async def settle_ack_many(self, items: list[Settle]) -> tuple[list[dict[str, Any]], list[asyncpg.Record]]:
        """One outcome per item, and the rows this call acked (repeats excluded)."""
        q = Q["job_ack_many"]
        args = {
            "ids": [i.id for i in items],
            "lease_ids": [i.lease_id for i in items],
            "results": [None if i.result is None else _json(i.result) for i in items],
            "ledger": self.ledger,
        }
        async with self.db.connection() as conn:
            rows = await conn.fetch(q.sql, *q.args(args))
            return await self._outcomes(conn, items, {r["id"] for r in rows}, JobState.SUCCEEDED), rows

    async def settle_nack_many(self, items: list[Settle]) -> tuple[list[dict[str, Any]], list[asyncpg.Record]]:
        """One outcome per item, and the rows this call nacked (repeats excluded)."""
        q = Q["job_nack_many"]
        args = {
            "ids": [i.id for i in items],
            "lease_ids": [i.lease_id for i in items],
            "errors": [_json(i.error) for i in items],
            "retryables": [i.retryable for i in items],
            "retry_ins_s": [i.retry_in_s for i in items],
            "keep_errors": self.defaults.error_history,
            "ledger": self.ledger,
        }
        pausing = {i.id: i.retry_in_s for i in items if i.pause_key and i.retry_in_s}
        async with self.db.connection() as conn, _atomic(conn, bool(pausing)):
            rows = await conn.fetch(q.sql, *q.args(args))
            pauses = [(r["queue"], r["flow_key"], pausing[r["id"]]) for r in rows if r["id"] in pausing]
            pauses = [p for p in pauses if p[1] is not None]
            if pauses:
                await self.keys.pause_for(conn, pauses)
            return await self._outcomes(conn, items, {r["id"] for r in rows}, None), rows

    async def _outcomes(
        self, conn: asyncpg.Connection, items: list[Settle], done: set[int], settled_state: JobState | None
    ) -> list[dict[str, Any]]:
        failed = [i.id for i in items if i.id not in done]
        current = {}
        if failed:
            q = Q["job_lease_state"]
            current = {r["id"]: r for r in await conn.fetch(q.sql, *q.args({"ids": failed}))}
        results = []
        for item in items:
            if item.id in done:
                results.append({"id": str(item.id), "ok": True})
                continue
            row = current.get(item.id)
            if row is None:
                results.append({"id": str(item.id), "ok": False, "code": JobNotFound.code})
            elif _repeat_of_settle(row, item.lease_id, settled_state):
                results.append({"id": str(item.id), "ok": True})
            else:
                results.append({"id": str(item.id), "ok": False, "code": LeaseLost.code})
        return results

    async def _already_settled(
        self,
        conn: asyncpg.Connection,
        job_id: int,
        lease_id: str,
        settled_state: JobState | tuple[JobState, ...] | None,
    ) -> asyncpg.Record:
        """A repeated ack/nack of the same lease (a client retry) answers the job; anything else fails."""
        row = await conn.fetchrow(Q["job_get"].sql, job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        if _repeat_of_settle(row, lease_id, settled_state):
            return row
        raise LeaseLost(f"job {job_id} is not held by lease {lease_id} (state {row['state']})")

    async def _raise_settle_failure(self, conn: asyncpg.Connection, job_id: int) -> None:
        row = await conn.fetchrow(Q["job_get"].sql, job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        raise LeaseLost(f"job {job_id} is not held by this lease (state {row['state']})")

    async def get(self, job_id: int) -> Job:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(Q["job_get"].sql, job_id)
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return public_job(row)

    async def list(self, where: JobFilter, before_id: int | None, limit: int) -> list[Job]:
        q = Q["job_list"]
        args = {
            "queue": where.queue,
            "state": where.state,
            "type": where.type,
            "correlation_id": where.correlation_id,
            "tag": where.tag,
            "error": where.error,
            "since": where.since,
            "until": where.until,
            "fingerprint": where.fingerprint,
            "payload_contains": where.payload_contains,
            "before_id": before_id,
            "limit": limit,
        }
        async with self.db.connection() as conn:
            return [public_job(r) for r in await conn.fetch(q.sql, *q.args(args))]

    async def cancel(self, job_id: int) -> Job:
        return await self._transition(Q["job_cancel"].sql, job_id, "cancel")

    async def replay(self, job_id: int) -> Job:
        return await self._transition(Q["job_replay"].sql, job_id, "replay")

    async def _transition(self, sql: str, job_id: int, verb: str) -> Job:
        async with self.db.connection() as conn:
            row = await conn.fetchrow(sql, job_id)
            if row is None:
                current = await conn.fetchrow(Q["job_get"].sql, job_id)
                if current is None:
                    raise JobNotFound(f"no job with id {job_id}")
                raise InvalidState(f"cannot {verb} job {job_id}: it is {current['state']}", state=current["state"])
        return public_job(row)

    async def replay_dead_by_queue(self, selection: DeadSelection) -> dict[str, int]:
        return await self._bulk_dead("replay", selection)

    async def purge_dead_by_queue(self, selection: DeadSelection) -> dict[str, int]:
        return await self._bulk_dead("purge", selection)

    async def count_dead_by_queue(self, selection: DeadSelection) -> dict[str, int]:
        """A dry run: how many jobs of each queue a replay or purge of `selection` would move."""
        return await self._bulk_dead("count", selection)

    async def _bulk_dead(
        self, action: str, s: DeadSelection, conn: asyncpg.Connection | None = None, redrive_id: int | None = None
    ) -> dict[str, int]:
        """How many jobs of each queue moved (or would move, or were frozen into a redrive)."""
        q = Q["job_bulk_dead"]
        args = {
            "action": action,
            "redrive_id": redrive_id,
            "fingerprint": s.fingerprint,
            "payload_contains": s.payload_contains,
            "ids": list(s.ids) if s.ids is not None else None,
            "queue": s.queue,
            "type": s.type,
            "error": s.error,
            "since": s.since,
            "until": s.until,
            "limit": s.limit,
        }
        if conn is not None:
            return {r["queue"]: r["n"] for r in await conn.fetch(q.sql, *q.args(args))}
        async with self.db.connection() as own:
            return {r["queue"]: r["n"] for r in await own.fetch(q.sql, *q.args(args))}

    async def freeze_dead(self, conn: asyncpg.Connection, redrive_id: int, selection: DeadSelection) -> int:
        """Freeze the dead jobs of `selection` into a redrive's items, in the caller's transaction."""
        return sum((await self._bulk_dead("redrive", selection, conn, redrive_id)).values())

    async def attempts(self, job_id: int) -> list[dict[str, Any]]:
        """Every attempt of a job, oldest first; the running one has no `ended_at` or `outcome`."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(Q["job_attempts"].sql, job_id)
            if not rows and await conn.fetchrow(Q["job_get"].sql, job_id) is None:
                raise JobNotFound(f"no job with id {job_id}")
        return [public_attempt(r) for r in rows]

    async def dead_groups(self, where: JobFilter, limit: int) -> list[dict[str, Any]]:
        q = Q["job_dead_groups"]
        args = {
            "queue": where.queue,
            "type": where.type,
            "error": where.error,
            "since": where.since,
            "until": where.until,
            "fingerprint": where.fingerprint,
            "payload_contains": where.payload_contains,
            "limit": limit,
        }
        async with self.db.connection() as conn:
            return [dict(r) for r in await conn.fetch(q.sql, *q.args(args))]

    async def expire_leases(self, limit: int) -> list[asyncpg.Record]:
        q = Q["job_expire_leases"]
        async with self.db.connection() as conn:
            args = {"limit": limit, "keep_errors": self.defaults.error_history, "ledger": self.ledger}
            return await conn.fetch(q.sql, *q.args(args))

    async def dead_rows(self) -> int:
        async with self.db.connection() as conn:
            return await conn.fetchval(Q["job_dead_rows"].sql)

    async def vacuum(self) -> None:
        async with self.db.connection() as conn:
            await conn.execute(Q["job_vacuum"].sql)

    async def delete_expired(self, limit: int) -> int:
        q = Q["job_delete_expired"]
        args = {
            "limit": limit,
            "retention_s": self.defaults.retention_s,
            "dead_retention_s": self.defaults.dead_retention_s,
        }
        async with self.db.connection() as conn:
            return await conn.fetchval(q.sql, *q.args(args))


def _atomic(conn: asyncpg.Connection, needed: bool) -> AbstractAsyncContextManager[Any]:
    """A transaction when several statements must stand or fall together; else nothing to pay."""
    return conn.transaction() if needed else contextlib.nullcontext()


def _enqueued(row: asyncpg.Record) -> tuple[Job, bool] | IdempotencyConflict:
    if row["conflict"]:
        return IdempotencyConflict(
            f"idempotency key {row['idempotency_key']!r} belongs to job {row['id']}, enqueued with another "
            "type or payload",
            job_id=str(row["id"]),
        )
    return public_job(row), row["duplicate"]


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def _json(value: Any) -> str:
    return jsontext.dumps(value).decode()


def _repeat_of_settle(
    row: asyncpg.Record, lease_id: str, settled_state: JobState | tuple[JobState, ...] | None
) -> bool:
    if str(row["lease_id"]) != str(lease_id):
        return False
    if isinstance(settled_state, tuple):
        return row["state"] in settled_state
    if settled_state is None:
        return row["state"] in (JobState.RETRYING, JobState.DEAD, JobState.CANCELLED)
    return row["state"] == settled_state
