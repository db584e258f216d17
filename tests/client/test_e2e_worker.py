"""The Worker against a real `jobbroker serve` process: throughput, failures, heartbeats, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import jobbroker_client as jb
from support import BrokerProcess, eventually

HERE = Path(__file__).resolve().parent


@pytest.fixture
def queue() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def client(broker_url: str) -> AsyncIterator[jb.AsyncClient]:
    async with jb.AsyncClient(broker_url) as c:
        yield c


def make_worker(broker_url: str, queue: str, **options: Any) -> jb.Worker:
    return jb.Worker(broker_url, queue=queue, **{"wait_seconds": 1, "shutdown_grace_seconds": 5, **options})


class Running:
    """A worker run in this process's event loop, stopped gracefully at the end of the block."""

    def __init__(self, worker: jb.Worker) -> None:
        self.worker = worker

    async def __aenter__(self) -> jb.Worker:
        self.task = asyncio.create_task(self.worker.run_async(install_signal_handlers=False))
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)


async def job_in(client: jb.AsyncClient, job_id: str, *states: str) -> jb.Job:
    found: list[jb.Job] = []

    async def check() -> bool:
        found[:] = [await client.get_job(job_id)]
        return found[0].state in states

    await eventually(check, within_s=30)
    return found[0]


async def test_a_thousand_jobs_across_async_and_sync_handlers(broker_url, client, queue):
    worker = make_worker(broker_url, queue, concurrency=16)
    runs: Counter[str] = Counter()

    @worker.handler("async")
    async def double(job: jb.JobContext) -> dict[str, int]:
        runs[job.id] += 1
        await asyncio.sleep(0)
        return {"double": job.payload["n"] * 2}

    @worker.handler("sync")
    def square(job: jb.JobContext) -> dict[str, int]:
        runs[job.id] += 1
        return {"square": job.payload["n"] ** 2}

    jobs = []
    for start in (0, 500):
        batch = [{"type": "async" if n % 2 else "sync", "payload": {"n": n}} for n in range(start, start + 500)]
        jobs += await client.enqueue_many(queue, batch)

    async def all_done() -> bool:
        return (await client.get_queue(queue)).counts.succeeded == 1000

    async with Running(worker):
        await eventually(all_done, within_s=90, every_s=0.2)

    assert worker.stats.succeeded == 1000 and worker.stats.failed == 0
    assert len(runs) == 1000 and set(runs.values()) == {1}
    stats = await client.get_queue(queue)
    assert stats.counts.succeeded == 1000 and stats.counts.active == 0 and stats.counts.pending == 0
    for job in jobs[::97]:
        done = await client.get_job(job.id)
        n = job.payload["n"]
        assert done.result == ({"double": n * 2} if job.type == "async" else {"square": n * n})
        assert done.attempts == 1


async def test_a_failing_handler_is_retried_then_dead_with_its_tracebacks(broker_url, client, queue):
    worker = make_worker(broker_url, queue)

    @worker.handler("flaky")
    def flaky(job: jb.JobContext) -> None:
        raise RuntimeError(f"attempt {job.attempt} failed")

    job = await client.enqueue(
        queue, "flaky", max_attempts=3, backoff={"initial_seconds": 0.05, "max_seconds": 0.05, "jitter": 0}
    )
    async with Running(worker):
        dead = await job_in(client, job.id, "dead")
    assert dead.attempts == 3
    assert [(e.attempt, e.error.type, e.error.message) for e in dead.errors] == [
        (n, "RuntimeError", f"attempt {n} failed") for n in (1, 2, 3)
    ]
    for entry in dead.errors:
        assert entry.worker_id == worker.worker_id
        assert 'raise RuntimeError(f"attempt {job.attempt} failed")' in entry.error.details["traceback"]
        assert entry.error.details["exception"] == "builtins.RuntimeError"
    assert job.id in [j.id for j in (await client.list_dlq(queue=queue)).items]


async def test_a_permanent_error_goes_straight_to_the_dlq(broker_url, client, queue):
    worker = make_worker(broker_url, queue)

    @worker.handler("bad")
    async def bad(job: jb.JobContext) -> None:
        raise jb.PermanentError("payload cannot be parsed")

    job = await client.enqueue(queue, "bad", max_attempts=10)
    async with Running(worker):
        dead = await job_in(client, job.id, "dead")
    assert dead.attempts == 1
    assert [(e.error.type, e.error.message) for e in dead.errors] == [("PermanentError", "payload cannot be parsed")]
    [in_dlq] = (await client.list_dlq(queue=queue)).items
    assert in_dlq.id == job.id


async def test_retry_snoozes_the_job(broker_url, client, queue):
    worker = make_worker(broker_url, queue)
    worker.register("later", lambda job: (_ for _ in ()).throw(jb.Retry(in_seconds=3600)))
    job = await client.enqueue(queue, "later", max_attempts=5)
    async with Running(worker):
        snoozed = await job_in(client, job.id, "retrying")
    assert snoozed.run_at.timestamp() > time.time() + 3500
    assert snoozed.errors[0].error.type == "Retry"


async def test_a_job_type_without_a_handler_is_dead_with_a_clear_message(broker_url, client, queue):
    worker = make_worker(broker_url, queue, worker_id="w-nohandler")
    worker.register("known", lambda job: None)
    job = await client.enqueue(queue, "unknown", max_attempts=5)
    async with Running(worker):
        dead = await job_in(client, job.id, "dead")
    assert dead.attempts == 1
    assert dead.errors[0].error.type == "NoHandler"
    assert dead.errors[0].error.message == (
        "no handler for job type 'unknown' in worker w-nohandler (it handles: known)"
    )


async def test_a_result_over_the_size_limit_fails_its_job_and_spares_the_rest_of_the_batch(broker_url, client, queue):
    worker = make_worker(broker_url, queue, concurrency=8)
    release = asyncio.Event()

    @worker.handler("t")
    async def answer(job: jb.JobContext) -> str:
        await release.wait()  # finish together, so the acks travel in one batch
        return "x" * (300 * 1024) if job.payload["big"] else "ok"

    jobs = await client.enqueue_many(queue, [{"type": "t", "payload": {"big": n == 2}} for n in range(5)])
    async with Running(worker):
        await eventually(lambda: _true(worker.stats.leased == 5), within_s=30)
        release.set()
        finals = [await job_in(client, job.id, "succeeded", "dead") for job in jobs]
    assert [job.state for job in finals] == ["succeeded", "succeeded", "dead", "succeeded", "succeeded"]
    assert finals[2].errors[0].error.type == "ResultTooLarge" and finals[2].attempts == 1


async def test_heartbeats_keep_a_handler_alive_past_its_visibility_timeout(broker_url, client, queue):
    worker = make_worker(broker_url, queue, visibility_timeout_seconds=1)
    started = asyncio.Event()

    @worker.handler("long")
    async def long(job: jb.JobContext) -> str:
        job.set_progress({"stage": "crunching"})
        started.set()
        await asyncio.sleep(3.5)
        return "finished"

    job = await client.enqueue(queue, "long", max_attempts=5)
    async with Running(worker):
        await started.wait()
        loop = asyncio.get_running_loop()
        # Checked until well before the handler's 3.5 s are up, however slow a loaded machine makes
        # each look. The broker's reaper runs every 0.1s: without heartbeats the job would be leased
        # again here, its visibility timeout being 1 s.
        until = loop.time() + 2.5
        while loop.time() < until:
            await asyncio.sleep(0.5)
            assert await client.lease(queue, worker_id="thief", max_jobs=10) == []
            assert (await client.get_job(job.id)).state == "active"
        assert (await client.get_job(job.id)).progress == {"stage": "crunching"}, "heartbeats carry progress"
        done = await job_in(client, job.id, "succeeded")
    assert done.attempts == 1 and done.errors == [] and done.result == "finished"


async def test_cancelling_an_active_job_reaches_its_handler(broker_url, client, queue):
    worker = make_worker(broker_url, queue, visibility_timeout_seconds=3)
    started = asyncio.Event()
    seen: list[bool] = []

    @worker.handler("cancellable")
    def cancellable(job: jb.JobContext) -> None:
        asyncio.run_coroutine_threadsafe(_set(started), loop)
        seen.append(job.cancel_event.wait(20))
        job.raise_if_cancelled()

    loop = asyncio.get_running_loop()
    job = await client.enqueue(queue, "cancellable", max_attempts=5)
    async with Running(worker):
        await started.wait()
        await client.cancel(job.id)
        final = await job_in(client, job.id, "dead", "cancelled")
    assert seen == [True]
    assert final.state == "cancelled", "the broker turns a cancel-requested job's nack into cancelled"
    assert final.attempts == 1 and final.errors[-1].error.type == "JobCancelled"


async def _set(event: asyncio.Event) -> None:
    event.set()


def start_worker_process(broker_url: str, queue: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).with_name("jobbroker-worker")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "jobbroker_client"]
    return subprocess.Popen(
        [*command, "worker_app:worker", "--log-level", "WARNING"],
        cwd=HERE,
        env={**os.environ, "JBTEST_URL": broker_url, "JBTEST_QUEUE": queue, "JBTEST_LOG": str(log), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finished_runs(log: Path) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(job_id, int(attempt)) for job_id, attempt in (line.split() for line in log.read_text().splitlines())]


async def test_sigterm_mid_batch_loses_nothing_and_repeats_nothing_that_finished(broker_url, client, queue, tmp_path):
    log = tmp_path / "runs.log"
    # Leased first (lower priority value), these are still running when SIGTERM comes.
    stuck = await client.enqueue_many(
        queue, [{"type": "work", "payload": {"seconds": 120}, "priority": -1} for _ in range(3)]
    )
    quick = await client.enqueue_many(queue, [{"type": "work", "payload": {"seconds": 0.3}} for _ in range(40)])
    every_id = {job.id for job in quick + stuck}

    first = start_worker_process(broker_url, queue, log, JBTEST_CONCURRENCY="8", JBTEST_GRACE="1.5")
    try:
        await eventually(lambda: _true(len(finished_runs(log)) >= 8), within_s=30)
        first.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(first.communicate, timeout=30)
    finally:
        first.kill()
    assert first.returncode == 0, output.decode()

    finished_first = {job_id for job_id, _ in finished_runs(log)}
    assert 8 <= len(finished_first) < len(every_id)
    page = await client.list_jobs(queue=queue, limit=100)
    by_id = {job.id: job for job in page.items}
    assert set(by_id) == every_id
    assert [j.id for j in page.items if j.state == "active"] == [], "nothing is left holding a lease"
    for job_id in finished_first:
        assert by_id[job_id].state == "succeeded" and by_id[job_id].result == {"done": job_id}
    for job in stuck:
        released = by_id[job.id]
        assert released.state == "pending" and released.run_at.timestamp() <= time.time() + 1
        assert released.attempts == 0 and released.errors == [], "a release is not a failed attempt"

    second = start_worker_process(broker_url, queue, log, JBTEST_CONCURRENCY="8")
    try:

        async def all_succeeded() -> bool:
            return (await client.get_queue(queue)).counts.succeeded == len(every_id)

        await eventually(all_succeeded, within_s=60)
        second.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(second.communicate, timeout=30)
    finally:
        second.kill()
    assert second.returncode == 0, output.decode()

    runs = Counter(job_id for job_id, _ in finished_runs(log))
    assert set(runs) == every_id, "every job ran to the end"
    assert set(runs.values()) == {1}, f"finished runs repeated: {[k for k, v in runs.items() if v > 1]}"
    assert {attempt for job_id, attempt in finished_runs(log) if job_id in {j.id for j in stuck}} == {1}, (
        "a released job runs again as the same attempt"
    )


async def _true(value: bool) -> bool:
    return value


async def test_a_worker_rides_out_a_broker_restart(fresh_database):
    """Its own broker process, because this test kills it."""
    broker = BrokerProcess(await fresh_database())
    await asyncio.to_thread(broker.start)
    queue = f"q-{uuid.uuid4().hex[:10]}"
    try:
        async with jb.AsyncClient(broker.url) as client:
            jobs = await client.enqueue_many(queue, [{"type": "t", "payload": n} for n in range(200)])
            worker = make_worker(broker.url, queue, concurrency=4)
            worker.register("t", _slow_echo)
            async with Running(worker):
                await eventually(lambda: _true(worker.stats.succeeded >= 40), within_s=30)
                broker.kill()
                await asyncio.sleep(0.5)
                await asyncio.to_thread(broker.start)

                async def all_done() -> bool:
                    return (await client.get_queue(queue)).counts.succeeded == 200

                await eventually(all_done, within_s=60, every_s=0.2)
            results = {job.id: job.result async for job in client.iter_jobs(queue=queue, limit=500)}
        assert results == {job.id: job.payload for job in jobs}
    finally:
        broker.stop()


async def _slow_echo(job: jb.JobContext) -> object:
    await asyncio.sleep(0.02)
    return job.payload


async def test_api_keys_reach_the_broker_from_client_and_worker(fresh_database):
    """Its own broker process, because this one requires API keys."""
    produce, consume = f"jbk_{uuid.uuid4().hex}", f"jbk_{uuid.uuid4().hex}"
    entries = ",".join(
        f"sha256:{hashlib.sha256(key.encode()).hexdigest()}:{scope}"
        for key, scope in ((produce, "produce"), (consume, "consume"))
    )
    broker = BrokerProcess(await fresh_database(), JOBBROKER_API_KEYS=entries)
    await asyncio.to_thread(broker.start)
    queue = f"q-{uuid.uuid4().hex[:10]}"
    try:
        async with jb.AsyncClient(broker.url) as anonymous, jb.AsyncClient(broker.url, api_key=produce) as producer:
            with pytest.raises(jb.Unauthorized) as info:
                await anonymous.enqueue(queue, "t")
            assert (info.value.status, info.value.code) == (401, "unauthorized")
            job = await producer.enqueue(queue, "t", {"n": 1})
            with pytest.raises(jb.Forbidden) as info:
                await producer.lease(queue)
            assert (info.value.status, info.value.code) == (403, "forbidden")

            refused = make_worker(broker.url, queue, api_key=produce)
            refused.register("t", lambda job: None)
            with pytest.raises(jb.Forbidden):
                await asyncio.wait_for(refused.run_async(install_signal_handlers=False), 30)

            worker = make_worker(broker.url, queue, api_key=consume)
            worker.register("t", lambda job: job.payload["n"] + 1)
            async with Running(worker):
                await eventually(lambda: _true(worker.stats.succeeded == 1), within_s=30)
            assert worker.stats.lost == 0
        async with jb.AsyncClient(broker.url, api_key=consume) as consumer:
            with pytest.raises(jb.Forbidden):
                await consumer.get_job(job.id)
    finally:
        broker.stop()


async def test_retry_with_pause_key_pauses_only_the_jobs_flow_key(broker_url, client, queue):
    worker = make_worker(broker_url, queue, concurrency=4)
    ran: list[str] = []

    @worker.handler("call-tenant")
    async def call(job: jb.JobContext) -> str:
        ran.append(job.flow_key)
        if job.flow_key == "tenant-a":
            raise jb.Retry(30, "the tenant's API answered 429", pause_key=True)
        return "ok"

    first = await client.enqueue(queue, "call-tenant", flow_key="tenant-a")
    assert first.flow_key == "tenant-a"
    async with Running(worker):
        await job_in(client, first.id, "retrying")
        held = await client.enqueue(queue, "call-tenant", flow_key="tenant-a")
        free = await client.enqueue(queue, "call-tenant", flow_key="tenant-b")
        await job_in(client, free.id, "succeeded")
        await asyncio.sleep(0.5)
        assert (await client.get_job(held.id)).state == "pending"
    assert ran == ["tenant-a", "tenant-b"]


async def test_a_job_with_a_short_heartbeat_timeout_is_heartbeaten_in_time(broker_url, client, queue):
    # The worker's own rhythm (a third of 30 s) would let the 1 s heartbeat timeout expire the lease.
    worker = make_worker(broker_url, queue, visibility_timeout_seconds=30)

    @worker.handler("long")
    async def long(job: jb.JobContext) -> str:
        await asyncio.sleep(2.5)
        return "finished"

    job = await client.enqueue(queue, "long", heartbeat_timeout_seconds=1, max_attempts=5)
    async with Running(worker):
        done = await job_in(client, job.id, "succeeded")
    assert (done.attempts, done.errors) == (1, [])
