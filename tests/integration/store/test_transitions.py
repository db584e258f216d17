"""Every (state, event) pair driven through the store: allowed pairs land where TRANSITIONS says,
every other pair changes nothing."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from jobbroker.core.errors import BrokerError
from jobbroker.core.models import NewJob
from jobbroker.core.states import TRANSITIONS, Event, JobState
from jobbroker.store.job import JobStore
from support import decoded

Q = "transitions"


@pytest.fixture
async def store(app: Any, pool: asyncpg.Pool) -> JobStore:
    await pool.execute("TRUNCATE job, queue")
    return app.state.broker.jobs


async def make(store: JobStore, state: JobState) -> dict[str, Any]:
    """A job in `state`, reached through the store's own operations; answers it with its last lease id."""
    [(job, _)] = await store.enqueue(Q, [NewJob(type="t", payload={}, max_attempts=5)])
    if state == JobState.PENDING:
        return {**job, "lease_id": str(uuid.uuid4())}
    if state == JobState.CANCELLED:
        return {**await store.cancel(int(job["id"])), "lease_id": str(uuid.uuid4())}
    [leased] = await store.lease(Q, "w", 1, None, None)
    lease_id, job_id = leased["lease_id"], int(leased["id"])
    match state:
        case JobState.ACTIVE:
            return leased
        case JobState.RETRYING:
            job = await store.nack(job_id, lease_id, {"message": "x"}, True, 0)
        case JobState.SUCCEEDED:
            job = await store.ack(job_id, lease_id, None)
        case JobState.DEAD:
            job = await store.nack(job_id, lease_id, {"message": "x"}, False, None)
    return {**job, "lease_id": lease_id}


async def apply(store: JobStore, pool: asyncpg.Pool, event: Event, job: dict[str, Any]) -> None:
    job_id, lease_id = int(job["id"]), job["lease_id"]
    actions: dict[Event, Callable[[], Awaitable[Any]]] = {
        Event.LEASE: lambda: store.lease(Q, "w2", 1, None, None),
        Event.ACK: lambda: store.ack(job_id, lease_id, None),
        Event.NACK_RETRY: lambda: store.nack(job_id, lease_id, {"message": "y"}, True, 60),
        Event.NACK_DEAD: lambda: store.nack(job_id, lease_id, {"message": "y"}, False, None),
        Event.EXPIRE_RETRY: lambda: _expire(store, pool, job_id),
        Event.EXPIRE_DEAD: lambda: _expire(store, pool, job_id, last_attempt=True),
        Event.CANCEL: lambda: store.cancel(job_id),
        Event.REQUEST_CANCEL: lambda: store.cancel(job_id),
        Event.RELEASE: lambda: store.release(job_id, lease_id, None),
        Event.REPLAY: lambda: store.replay(job_id),
    }
    with contextlib.suppress(BrokerError):
        await actions[event]()


async def _expire(store: JobStore, pool: asyncpg.Pool, job_id: int, last_attempt: bool = False) -> None:
    if last_attempt:
        await pool.execute("UPDATE job SET max_attempts = attempts WHERE id = $1 AND attempts > 0", job_id)
    await pool.execute(
        "UPDATE job SET lease_expires_at = now() - interval '1 second' WHERE id = $1 AND state = 'active'", job_id
    )
    await store.expire_leases(100)


# CANCEL and REQUEST_CANCEL are one operation: which one happens depends on the state.
EXPECTED_OTHERWISE = {
    (JobState.ACTIVE, Event.CANCEL): JobState.ACTIVE,
    (JobState.PENDING, Event.REQUEST_CANCEL): JobState.CANCELLED,
    (JobState.RETRYING, Event.REQUEST_CANCEL): JobState.CANCELLED,
}


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("event", list(Event))
async def test_every_state_event_pair(store: JobStore, pool: asyncpg.Pool, state: JobState, event: Event) -> None:
    job = await make(store, state)
    before = await pool.fetchrow("SELECT * FROM job WHERE id = $1", int(job["id"]))
    assert before["state"] == state
    await apply(store, pool, event, job)
    after = await pool.fetchrow("SELECT * FROM job WHERE id = $1", int(job["id"]))
    expected = TRANSITIONS.get((state, event), EXPECTED_OTHERWISE.get((state, event)))
    if expected is None:
        assert after["state"] == state
        assert after["updated_at"] == before["updated_at"], "a refused transition still wrote to the job"
    else:
        assert after["state"] == expected
    if (state, event) == (JobState.ACTIVE, Event.REQUEST_CANCEL):
        assert after["cancel_requested"] is True
    if event == Event.REPLAY and expected is not None:
        assert after["attempts"] == 0 and decoded(after["errors"]) == decoded(before["errors"])


async def test_a_cancel_requested_job_that_fails_ends_cancelled(store: JobStore) -> None:
    job = await make(store, JobState.ACTIVE)
    await store.cancel(int(job["id"]))
    beat = await store.heartbeat(int(job["id"]), job["lease_id"], None, None)
    assert beat["cancel_requested"] is True
    failed = await store.nack(int(job["id"]), job["lease_id"], {"message": "stopped"}, True, None)
    assert failed["state"] == JobState.CANCELLED
