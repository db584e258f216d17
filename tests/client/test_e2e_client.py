"""Every Client and AsyncClient method against a real `jobbroker serve` process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import jobbroker_client as jb

from .either import Either


@pytest.fixture(params=["sync", "async"])
async def api(request: pytest.FixtureRequest, broker_url: str):
    if request.param == "sync":
        with jb.Client(broker_url) as client:
            yield Either(client)
    else:
        async with jb.AsyncClient(broker_url) as client:
            yield Either(client)


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


async def test_enqueue_with_every_option_and_get_it_back(api, queue):
    run_at = datetime.now(UTC) + timedelta(hours=1)
    job = await api.enqueue(
        queue,
        "send-email",
        {"to": "a@example.com"},
        priority=-5,
        run_at=run_at,
        max_attempts=7,
        backoff={"initial_seconds": 2, "max_seconds": 20, "multiplier": 3, "jitter": 0.5},
        timeout_seconds=45,
        idempotency_key="key-1",
        correlation_id="corr-1",
        tags=["x", "y"],
    )
    assert isinstance(job, jb.EnqueuedJob) and job.duplicate is False
    assert (job.queue, job.type, job.payload, job.state) == (queue, "send-email", {"to": "a@example.com"}, "pending")
    assert (job.priority, job.max_attempts, job.timeout_seconds) == (-5, 7, 45)
    assert job.backoff == jb.Backoff(initial_seconds=2, max_seconds=20, multiplier=3, jitter=0.5)
    assert abs((job.run_at - run_at).total_seconds()) < 1
    assert (job.idempotency_key, job.correlation_id, job.tags) == ("key-1", "corr-1", ["x", "y"])

    again = await api.enqueue(queue, "send-email", {"to": "a@example.com"}, idempotency_key="key-1")
    assert again.duplicate is True and again.id == job.id
    with pytest.raises(jb.Conflict) as conflict:  # the same key, another payload
        await api.enqueue(queue, "send-email", {"other": True}, idempotency_key="key-1")
    assert conflict.value.code == "idempotency_conflict"

    fetched = await api.get_job(job.id)
    assert fetched.id == job.id and fetched.payload == {"to": "a@example.com"}


async def test_enqueue_with_a_delay_is_not_leased_before_it(api, queue):
    job = await api.enqueue(queue, "later", delay_seconds=3600)
    assert job.run_at > datetime.now(UTC) + timedelta(minutes=59)
    assert await api.lease(queue, max_jobs=10) == []


async def test_enqueue_many_keeps_input_order(api, queue):
    jobs = await api.enqueue_many(
        queue,
        [{"type": "a", "payload": 1}, jb.JobSpec(type="b", payload=[2], priority=3, idempotency_key="k")]
        + [{"type": "c", "payload": n} for n in range(5)],
    )
    assert [(j.type, j.payload) for j in jobs[:2]] == [("a", 1), ("b", [2])]
    assert [j.payload for j in jobs[2:]] == list(range(5))
    again = await api.enqueue_many(queue, [jb.JobSpec(type="b", payload=[2], priority=3, idempotency_key="k")])
    assert again[0].duplicate is True and again[0].id == jobs[1].id


async def test_list_jobs_filters_and_iter_jobs_follows_every_page(api, queue):
    await api.enqueue_many(queue, [{"type": "a", "tags": ["t1"]} for _ in range(5)] + [{"type": "b"}])
    page = await api.list_jobs(queue=queue, type="a", limit=2)
    assert len(page.items) == 2 and page.next_cursor
    assert all(job.type == "a" for job in page.items)
    everything = await api.collect("iter_jobs", queue=queue, limit=2)
    assert len(everything) == 6 and len({job.id for job in everything}) == 6
    tagged = await api.list_jobs(queue=queue, tag="t1", state="pending")
    assert len(tagged.items) == 5


async def test_list_jobs_by_correlation_id(api, queue):
    job = await api.enqueue(queue, "a", correlation_id=f"c-{queue}")
    page = await api.list_jobs(correlation_id=f"c-{queue}")
    assert [j.id for j in page.items] == [job.id]


async def test_lease_heartbeat_and_ack(api, queue):
    job = await api.enqueue(queue, "work", {"n": 1})
    [leased] = await api.lease(queue, worker_id="w-e2e", max_jobs=5, visibility_timeout_seconds=30, wait_seconds=1)
    assert isinstance(leased, jb.LeasedJob)
    assert (leased.id, leased.attempt, leased.state, leased.worker_id) == (job.id, 1, "active", "w-e2e")
    beat = await api.heartbeat(leased.id, leased.lease_id, progress={"pct": 50}, visibility_timeout_seconds=60)
    assert beat.cancel_requested is False and beat.lease_expires_at > datetime.now(UTC) + timedelta(seconds=50)
    assert (await api.get_job(job.id)).progress == {"pct": 50}
    done = await api.ack(leased.id, leased.lease_id, {"sent": True})
    assert done.state == "succeeded" and done.result == {"sent": True}
    repeated = await api.ack(leased.id, leased.lease_id, {"sent": True})
    assert repeated.state == "succeeded", "a resent ack answers the job (so the SDK may resend it)"
    with pytest.raises(jb.LeaseLost) as info:
        await api.ack(leased.id, str(uuid.uuid4()))
    assert info.value.status == 409 and info.value.code == "lease_lost"


async def test_lease_only_given_types(api, queue):
    await api.enqueue_many(queue, [{"type": "a"}, {"type": "b"}])
    leased = await api.lease(queue, max_jobs=10, types=["b"])
    assert [job.type for job in leased] == ["b"]


async def test_nack_retries_then_dead_with_the_error_history(api, queue):
    job = await api.enqueue(queue, "flaky", max_attempts=2, backoff={"initial_seconds": 0.01, "max_seconds": 0.01})
    [first] = await api.lease(queue)
    retrying = await api.nack(first.id, first.lease_id, {"message": "boom", "type": "IOError", "details": {"k": 1}})
    assert retrying.state == "retrying"
    [second] = await api.lease(queue, wait_seconds=5)
    assert second.attempt == 2
    dead = await api.nack(second.id, second.lease_id, ValueError("bad value"))
    assert dead.state == "dead"
    assert [(e.attempt, e.error.message, e.error.type) for e in dead.errors] == [
        (1, "boom", "IOError"),
        (2, "bad value", "ValueError"),
    ]
    assert dead.errors[0].error.details == {"k": 1}
    assert job.id in [j.id for j in (await api.list_dlq(queue=queue)).items]


async def test_release_returns_the_attempt(api, queue):
    await api.enqueue(queue, "t", max_attempts=1)
    [leased] = await api.lease(queue)
    released = await api.release(leased.id, leased.lease_id)
    assert released.state == "pending" and released.attempts == 0
    [again] = await api.lease(queue)
    assert again.id == leased.id and again.attempt == 1


async def test_nack_with_retry_in_seconds_and_not_retryable(api, queue):
    await api.enqueue_many(queue, [{"type": "a"}, {"type": "b"}])
    first, second = await api.lease(queue, max_jobs=2)
    snoozed = await api.nack(first.id, first.lease_id, "later", retry_in_seconds=3600)
    assert snoozed.state == "retrying" and snoozed.run_at > datetime.now(UTC) + timedelta(minutes=59)
    dead = await api.nack(second.id, second.lease_id, "fatal", retryable=False)
    assert dead.state == "dead" and dead.attempts == 1


async def test_ack_many_and_nack_many(api, queue):
    await api.enqueue_many(queue, [{"type": "t"} for _ in range(4)])
    a, b, c, d = await api.lease(queue, max_jobs=4)
    results = await api.ack_many(
        [{"id": a.id, "lease_id": a.lease_id, "result": 1}, jb.AckItem(id=b.id, lease_id=str(uuid.uuid4()))]
    )
    assert [(r.id, r.ok, r.code) for r in results] == [(a.id, True, None), (b.id, False, "lease_lost")]
    results = await api.nack_many(
        [
            {"id": c.id, "lease_id": c.lease_id, "error": "x", "retryable": False},
            jb.NackItem(id=d.id, lease_id=d.lease_id, error=jb.ErrorInfo(message="y"), retry_in_seconds=3600),
        ]
    )
    assert all(r.ok for r in results)
    states = [(await api.get_job(j.id)).state for j in (a, b, c, d)]
    assert states == ["succeeded", "active", "dead", "retrying"]


async def test_cancel_waiting_and_active_jobs_and_replay(api, queue):
    waiting = await api.enqueue(queue, "a", delay_seconds=3600)
    cancelled = await api.cancel(waiting.id)
    assert cancelled.state == "cancelled"
    with pytest.raises(jb.InvalidState) as info:
        await api.cancel(waiting.id)
    assert info.value.status == 409
    replayed = await api.replay(waiting.id)
    assert replayed.state == "pending" and replayed.attempts == 0

    await api.enqueue(queue, "b")
    [active] = await api.lease(queue, types=["b"])
    flagged = await api.cancel(active.id)
    assert flagged.state == "active" and flagged.cancel_requested is True
    beat = await api.heartbeat(active.id, active.lease_id)
    assert beat.cancel_requested is True


async def test_replay_of_a_job_that_is_not_dead_is_refused(api, queue):
    job = await api.enqueue(queue, "a")
    with pytest.raises(jb.InvalidState):
        await api.replay(job.id)


async def test_dlq_list_filters_bulk_replay_and_purge(api, queue):
    await api.enqueue_many(queue, [{"type": "smtp"} for _ in range(3)] + [{"type": "sms"}])
    for job in await api.lease(queue, max_jobs=4):
        await api.nack(job.id, job.lease_id, f"{job.type} refused", retryable=False)
    page = await api.list_dlq(queue=queue, type="smtp", error="refused")
    assert len(page.items) == 3 and all(j.state == "dead" for j in page.items)
    since = datetime.now(UTC) - timedelta(minutes=5)
    assert len(await api.collect("iter_dlq", queue=queue, since=since, limit=1)) == 4
    assert len((await api.list_dlq(queue=queue, until=since)).items) == 0

    assert await api.replay_dlq([page.items[0].id]) == 1
    assert await api.replay_dlq(queue=queue, type="smtp", limit=1) == 1
    assert (await api.get_queue(queue)).counts.pending == 2
    assert await api.purge_dlq(queue=queue, error="sms") == 1
    assert await api.purge_dlq(queue=queue) == 1
    assert (await api.list_dlq(queue=queue)).items == []


async def test_queue_stats_and_update(api, queue):
    await api.enqueue_many(queue, [{"type": "t"} for _ in range(3)])
    stats = await api.get_queue(queue)
    assert isinstance(stats, jb.QueueStats)
    assert stats.name == queue and stats.counts.pending == 3 and stats.paused is False
    assert queue in [q.name for q in await api.list_queues()]
    updated = await api.update_queue(
        queue,
        paused=True,
        max_concurrency=4,
        rate_limit=50,
        default_max_attempts=9,
        default_backoff={"initial_seconds": 1, "max_seconds": 10},
        retention_seconds=3600,
        dead_retention_seconds=7200,
    )
    assert (updated.paused, updated.max_concurrency, updated.rate_limit) == (True, 4, 50)
    assert (updated.default_max_attempts, updated.retention_seconds, updated.dead_retention_seconds) == (9, 3600, 7200)
    assert await api.lease(queue) == []
    resumed = await api.update_queue(queue, paused=False, max_concurrency=None)
    assert resumed.paused is False and resumed.max_concurrency is None and resumed.rate_limit == 50
    assert len(await api.lease(queue, max_jobs=3)) == 3


async def test_health_and_ready(api):
    assert (await api.health())["status"] == "ok"
    assert (await api.ready())["status"] == "ok"


async def test_errors_are_typed(api, queue):
    with pytest.raises(jb.JobNotFound) as info:
        await api.get_job("999999999")
    assert (info.value.status, info.value.code) == (404, "job_not_found")
    with pytest.raises(jb.ValidationError) as info:
        await api.enqueue(queue, "bad type with spaces")
    assert info.value.status == 422 and info.value.errors
    with pytest.raises(jb.PayloadTooLarge) as info:
        await api.enqueue(queue, "big", "x" * (300 * 1024))
    assert info.value.status == 413
    with pytest.raises(jb.JobNotFound):
        await api.heartbeat("999999999", str(uuid.uuid4()))
    job = await api.enqueue(queue, "small")
    await api.lease(queue, types=["small"])
    with pytest.raises(jb.LeaseLost):
        await api.heartbeat(job.id, str(uuid.uuid4()))


def test_every_public_client_method_is_exercised_here():
    # The forensics calls (attempts, DLQ groups, redrives, export, audit) have their own module.
    source = Path(__file__).read_text() + (Path(__file__).parent / "test_e2e_forensics.py").read_text()
    methods = {name for name in dir(jb.Client) if not name.startswith("_") and callable(getattr(jb.Client, name))}
    untested = {name for name in methods - {"close"} if f"api.{name}(" not in source and f'"{name}"' not in source}
    assert untested == set()
