"""Worker logic against an in-memory fake broker: outcomes, capacity, heartbeats, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import jobbroker_client as jb

from .fake_broker import FakeBroker


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.005)


def make_worker(broker: FakeBroker, **options: Any) -> jb.Worker:
    options = {"concurrency": 4, "wait_seconds": 0.05, "shutdown_grace_seconds": 5, **options}
    return jb.Worker("http://fake", queue=broker.queue, transport=broker.transport, **options)


async def run_until(worker: jb.Worker, condition: Callable[[], bool]) -> None:
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    try:
        await eventually(lambda: condition() or task.done())
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


def settled(broker: FakeBroker) -> bool:
    return all(job["state"] in ("succeeded", "dead") for job in broker.jobs.values())


async def test_sync_and_async_handlers_are_acked_with_their_results():
    broker = FakeBroker()
    worker = make_worker(broker)
    seen: list[tuple[str, Any, int]] = []

    @worker.handler("sync")
    def sync_handler(job: jb.JobContext) -> dict[str, Any]:
        assert threading.current_thread() is not threading.main_thread()
        seen.append((job.type, job.payload, job.attempt))
        return {"thread": True, "n": job.payload["n"]}

    @worker.handler("async")
    async def async_handler(job: jb.JobContext) -> list[int]:
        seen.append((job.type, job.payload, job.attempt))
        return [job.payload["n"]]

    ids = [broker.add("sync", {"n": 1}), broker.add("async", {"n": 2})]
    await run_until(worker, lambda: settled(broker))
    assert [broker.jobs[i]["result"] for i in ids] == [{"thread": True, "n": 1}, [2]]
    assert sorted(seen) == [("async", {"n": 2}, 1), ("sync", {"n": 1}, 1)]
    assert worker.stats.succeeded == 2 and worker.stats.failed == 0


async def test_a_failing_handler_is_nacked_with_type_message_and_traceback():
    broker = FakeBroker()
    worker = make_worker(broker)

    @worker.handler("t")
    def fail(job: jb.JobContext) -> None:
        raise KeyError("missing thing")

    job_id = broker.add("t", max_attempts=2)
    await run_until(worker, lambda: settled(broker))
    assert broker.state(job_id) == "dead"
    assert len(broker.nacks) == 2
    nack = broker.nacks[0]
    assert nack["retryable"] is True and "retry_in_seconds" not in nack
    assert nack["error"]["type"] == "KeyError"
    assert nack["error"]["message"] == "'missing thing'"
    assert "in fail" in nack["error"]["details"]["traceback"]
    assert 'raise KeyError("missing thing")' in nack["error"]["details"]["traceback"]


async def test_permanent_error_is_not_retried():
    broker = FakeBroker()
    worker = make_worker(broker)

    @worker.handler("t")
    async def fail(job: jb.JobContext) -> None:
        raise jb.PermanentError("bad input")

    job_id = broker.add("t", max_attempts=5)
    await run_until(worker, lambda: settled(broker))
    assert broker.state(job_id) == "dead"
    assert [(n["retryable"], n["error"]["type"], n["error"]["message"]) for n in broker.nacks] == [
        (False, "PermanentError", "bad input")
    ]


async def test_retry_asks_for_a_delay():
    broker = FakeBroker()
    worker = make_worker(broker)

    @worker.handler("t")
    def snooze(job: jb.JobContext) -> None:
        raise jb.Retry(in_seconds=7)

    broker.add("t", max_attempts=1)
    await run_until(worker, lambda: settled(broker))
    assert broker.nacks[0]["retryable"] is True
    assert broker.nacks[0]["retry_in_seconds"] == 7
    assert broker.nacks[0]["error"]["type"] == "Retry"


async def test_a_job_without_a_handler_fails_permanently_with_a_clear_message():
    broker = FakeBroker()
    worker = make_worker(broker, worker_id="w-1")
    worker.register("known", lambda job: None)
    broker.add("mystery", max_attempts=5)
    await run_until(worker, lambda: settled(broker))
    (nack,) = broker.nacks
    assert nack["retryable"] is False and nack["error"]["type"] == "NoHandler"
    assert nack["error"]["message"] == "no handler for job type 'mystery' in worker w-1 (it handles: known)"


async def test_a_result_that_is_not_json_fails_the_job_permanently():
    broker = FakeBroker()
    worker = make_worker(broker)
    worker.register("t", lambda job: object())
    broker.add("t")
    await run_until(worker, lambda: settled(broker))
    (nack,) = broker.nacks
    assert nack["retryable"] is False and "not JSON serializable" in nack["error"]["message"]


async def test_registering_a_type_twice_is_refused():
    worker = make_worker(FakeBroker())
    worker.register("t", lambda job: None)
    with pytest.raises(ValueError, match="already registered"):
        worker.register("t", lambda job: None)


async def test_leases_are_sized_to_free_capacity_and_never_exceed_concurrency():
    broker = FakeBroker()
    worker = make_worker(broker, concurrency=3)
    gate = threading.Event()
    running = 0
    peak = 0
    lock = threading.Lock()

    @worker.handler("t")
    def work(job: jb.JobContext) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        gate.wait(5)
        with lock:
            running -= 1

    for _ in range(7):
        broker.add("t")
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: running == 3)
    assert broker.lease_sizes[0] == 3
    gate.set()
    await eventually(lambda: settled(broker))
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert peak == 3
    assert all(1 <= size <= 3 for size in broker.lease_sizes)
    assert len(broker.acks) == 7


async def test_heartbeats_run_while_a_handler_works_and_surface_cancellation():
    broker = FakeBroker()
    worker = make_worker(broker, visibility_timeout_seconds=30, heartbeat_seconds=0.02)

    @worker.handler("t")
    def long(job: jb.JobContext) -> None:
        job.set_progress({"step": 1})
        assert job.cancel_event.wait(5)
        job.raise_if_cancelled()

    job_id = broker.add("t", max_attempts=3)
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: len(broker.heartbeats) >= 2)
    assert broker.heartbeats[-1]["progress"] == {"step": 1}
    assert broker.heartbeats[-1]["visibility_timeout_seconds"] == 30
    broker.jobs[job_id]["cancel_requested"] = True
    await eventually(lambda: settled(broker))
    worker.stop()
    await asyncio.wait_for(task, 10)
    (nack,) = broker.nacks
    assert nack["retryable"] is False and nack["error"]["type"] == "JobCancelled"


async def test_a_lost_lease_is_surfaced_and_the_job_is_not_acked():
    broker = FakeBroker()
    worker = make_worker(broker, heartbeat_seconds=0.02)
    lost = []

    @worker.handler("t")
    def long(job: jb.JobContext) -> None:
        job.cancel_event.wait(5)
        lost.append(job.lease_lost)

    job_id = broker.add("t")
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: len(broker.heartbeats) >= 1)
    broker.jobs[job_id]["lease_id"] = "someone-else"
    await eventually(lambda: lost == [True])
    worker.stop()
    await asyncio.wait_for(task, 10)
    assert broker.acks == [] and worker.stats.lost == 1


async def test_stop_lets_running_jobs_finish_within_the_grace_period():
    broker = FakeBroker()
    worker = make_worker(broker, concurrency=2)
    started = asyncio.Event()

    @worker.handler("t")
    async def slowish(job: jb.JobContext) -> str:
        started.set()
        await asyncio.sleep(0.2)
        return "done"

    job_id = broker.add("t")
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await started.wait()
    worker.stop()
    await asyncio.sleep(0.1)  # longer than wait_seconds: a long-poll already in flight has ended
    leases = len(broker.lease_sizes)
    late = broker.add("t")
    await asyncio.wait_for(task, 10)
    assert broker.state(job_id) == "succeeded"
    assert len(broker.lease_sizes) == leases and broker.state(late) == "pending"


async def test_jobs_still_running_after_the_grace_period_are_released_at_once():
    broker = FakeBroker()
    worker = make_worker(broker, concurrency=4, shutdown_grace_seconds=0.2)
    release = threading.Event()

    @worker.handler("sync")
    def stuck(job: jb.JobContext) -> None:
        release.wait(5)

    @worker.handler("async")
    async def stuck_async(job: jb.JobContext) -> None:
        await asyncio.sleep(5)

    @worker.handler("quick")
    def quick(job: jb.JobContext) -> None:
        return None

    for job_type in ("sync", "async", "quick"):
        broker.add(job_type)
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: len(broker.acks) == 1 and worker.stats.leased == 3)
    worker.stop()
    await asyncio.wait_for(task, 10)
    release.set()
    assert sorted(r["id"] for r in broker.releases) == ["1", "2"] and broker.nacks == []
    assert broker.state("1") == broker.state("2") == "pending"
    assert broker.jobs["1"]["attempts"] == 0, "a release must give the attempt back"
    assert worker.stats.released == 2 and worker.stats.succeeded == 1


async def test_a_second_stop_skips_the_grace_period():
    broker = FakeBroker()
    worker = make_worker(broker, shutdown_grace_seconds=60)

    @worker.handler("t")
    async def stuck(job: jb.JobContext) -> None:
        await asyncio.sleep(60)

    broker.add("t")
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: worker.stats.leased == 1)
    worker.stop()
    await asyncio.sleep(0.05)
    assert not task.done()
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert [r["id"] for r in broker.releases] == ["1"] and broker.nacks == []


async def test_a_refused_lease_stops_the_worker_with_the_error():
    broker = FakeBroker()
    broker.lease_status = 401
    worker = make_worker(broker)
    with pytest.raises(jb.Unauthorized):
        await asyncio.wait_for(worker.run_async(install_signal_handlers=False), 5)


async def test_stop_before_run_returns_at_once():
    broker = FakeBroker()
    worker = make_worker(broker)
    worker.stop()
    await asyncio.wait_for(worker.run_async(install_signal_handlers=False), 5)
    assert worker.stats.leased == 0


async def test_stop_from_inside_a_sync_handler():
    broker = FakeBroker()
    worker = make_worker(broker)

    @worker.handler("t")
    def stopper(job: jb.JobContext) -> str:
        worker.stop()
        return "ok"

    job_id = broker.add("t")
    await asyncio.wait_for(worker.run_async(install_signal_handlers=False), 10)
    assert broker.state(job_id) == "succeeded"


def test_worker_needs_a_queue(monkeypatch):
    monkeypatch.delenv("JOBBROKER_QUEUE", raising=False)
    with pytest.raises(ValueError, match="queue"):
        jb.Worker("http://fake")
    monkeypatch.setenv("JOBBROKER_QUEUE", "from-env")
    assert jb.Worker("http://fake").queue == "from-env"


async def test_types_restricts_what_is_leased():
    broker = FakeBroker()
    worker = make_worker(broker, types=["a"])
    worker.register("a", lambda job: "a")
    worker.register("b", lambda job: "b")
    a, b = broker.add("a"), broker.add("b")
    await run_until(worker, lambda: broker.state(a) == "succeeded")
    assert broker.state(b) == "pending"


async def test_a_stop_cancels_the_long_poll_in_flight_so_the_grace_period_starts_at_once():
    broker = FakeBroker()
    # A long-poll the fake broker holds for 30 s; the worker must not wait for its answer.
    worker = make_worker(broker, wait_seconds=30, shutdown_grace_seconds=60)
    task = asyncio.create_task(worker.run_async(install_signal_handlers=False))
    await eventually(lambda: len(broker.lease_sizes) == 1)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.0
