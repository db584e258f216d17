"""What every system's scenarios share: the measured window, latency summaries, backpressure."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import CpuMeter

QUEUE = "bench"
JOB_TYPE = "noop"
# Steady state keeps at most this many jobs enqueued but not yet acked, so latency stays bounded
# and the figure is the rate both sides sustain together, not how fast a backlog grows.
MAX_BACKLOG = 2000


def payload(i: int) -> dict[str, Any]:
    """A small no-op payload (about 40 bytes as JSON)."""
    return {"i": i, "user": "u-00042", "op": "noop"}


@dataclass
class Window:
    """The timed part of a scenario: setup and teardown stay outside it."""

    meter: CpuMeter
    t0: float = 0.0
    t1: float = 0.0
    cpu: dict[str, Any] = field(default_factory=dict)

    async def start(self) -> None:
        await self.meter.start()
        self.t0 = time.perf_counter()

    async def stop(self) -> None:
        self.t1 = time.perf_counter()
        self.cpu = await self.meter.stop()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0


def percentiles(samples_s: list[float]) -> dict[str, float]:
    if not samples_s:
        return {}
    s = sorted(samples_s)

    def at(q: float) -> float:
        return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 2)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": round(1000 * s[-1], 2)}


def result(window: Window, jobs: int, seconds: float | None = None, **extra: Any) -> dict[str, Any]:
    seconds = window.seconds if seconds is None else seconds
    return {
        "jobs": jobs,
        "seconds": round(seconds, 3),
        "jobs_per_s": round(jobs / seconds, 1) if seconds else 0.0,
        "cpu": window.cpu,
        **extra,
    }


class Flow:
    """Steady-state bookkeeping: producers wait while the backlog is full; latencies per acked job."""

    def __init__(self, duration_s: float) -> None:
        self.duration_s = duration_s
        self.deadline = time.perf_counter() + duration_s
        self.acked_in_time = 0
        self.produced = 0
        self.acked = 0
        self.latencies: list[float] = []
        self._room = asyncio.Event()
        self._room.set()

    @property
    def running(self) -> bool:
        return time.perf_counter() < self.deadline

    async def wait_for_room(self, n: int) -> None:
        while self.produced - self.acked + n > MAX_BACKLOG:
            self._room.clear()
            await self._room.wait()
        self.produced += n

    def done(self, enqueued_at: list[float]) -> None:
        now = time.perf_counter()
        self.acked += len(enqueued_at)
        self.latencies.extend(now - t for t in enqueued_at)
        if self.produced - self.acked <= MAX_BACKLOG // 2:
            self._room.set()


def steady_result(window: Window, flow: Flow, **extra: Any) -> dict[str, Any]:
    """Throughput over the fixed duration; jobs acked while shutting down do not count."""
    return result(window, flow.acked_in_time, seconds=flow.duration_s, latency=percentiles(flow.latencies), **extra)


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def run_until(deadline_tasks: list[asyncio.Task[Any]], flow: Flow) -> None:
    """Let producers and workers run for the flow's duration, then stop them all."""
    await asyncio.sleep(max(0.0, flow.deadline - time.perf_counter()))
    flow.acked_in_time = flow.acked
    for task in deadline_tasks:
        task.cancel()
    outcomes = await asyncio.gather(*deadline_tasks, return_exceptions=True)
    # A producer or worker that failed would otherwise only show as a low figure.
    failed = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, asyncio.CancelledError)]
    if failed:
        raise failed[0]
