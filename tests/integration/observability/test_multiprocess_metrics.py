"""`jobbroker serve --workers 2`: whichever worker process answers a scrape reports every process's
counts, because each writes them to PROMETHEUS_MULTIPROC_DIR and a scrape sums them all."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from observability_support import Scrape
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from support import BrokerProcess

QUEUE = "multi"


@pytest.fixture(scope="module")
async def two_workers(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[tuple[BrokerProcess, Path]]:
    metrics_dir = Path(tempfile.mkdtemp(prefix="jobbroker-test-metrics-"))
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # a previous run's file: serve must clear it
    broker = BrokerProcess(await fresh_database(), JOBBROKER_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    await asyncio.to_thread(broker.start)
    yield broker, metrics_dir
    await asyncio.to_thread(broker.stop)
    shutil.rmtree(metrics_dir, ignore_errors=True)


def enqueued_by_process(metrics_dir: Path) -> dict[str, float]:
    """Each worker process's own count, read from its file alone."""
    counts = {}
    for file in metrics_dir.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(file, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            scrape = Scrape(generate_latest(registry).decode())
        counts[file.stem] = scrape.value("jobbroker_jobs_enqueued_total", queue=QUEUE, type="t")
    return counts


async def test_every_scrape_sums_all_worker_processes(two_workers: tuple[BrokerProcess, Path]) -> None:
    broker, metrics_dir = two_workers
    assert not (metrics_dir / "counter_1.db").exists()
    sent = 0

    async def enqueue() -> None:
        # A connection per request, so the kernel may hand each to either worker.
        async with httpx.AsyncClient(base_url=broker.url) as c:
            assert (await c.post(f"/v1/queues/{QUEUE}/jobs", json={"type": "t"})).status_code == 201

    for _ in range(20):
        await asyncio.gather(*(enqueue() for _ in range(20)))
        sent += 20
        if sum(1 for n in enqueued_by_process(metrics_dir).values() if n > 0) >= 2:
            break
    else:
        pytest.fail("every request went to one worker process: the test cannot tell")
    assert sum(enqueued_by_process(metrics_dir).values()) == sent

    for _ in range(10):
        async with httpx.AsyncClient(base_url=broker.url) as c:
            text = (await c.get("/metrics")).text
        assert Scrape(text).value("jobbroker_jobs_enqueued_total", queue=QUEUE, type="t") == sent
        assert Scrape(text).value("jobbroker_queue_jobs", queue=QUEUE, state="pending") == sent
