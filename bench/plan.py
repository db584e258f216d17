"""What one bench run measures: the scenarios, each for every system that can run it, with the same load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PEERS = ("procrastinate", "pgqueuer")


@dataclass(frozen=True)
class Case:
    key: str  # the scenario, shared by the systems compared in it
    title: str
    system: str  # jobbroker | raw | procrastinate | pgqueuer | sdk
    scenario: str  # the function in bench/systems/<system>.py
    params: dict[str, Any] = field(default_factory=dict)
    prefill: int = 0


@dataclass(frozen=True)
class Config:
    jobs: int = 20_000
    duration_s: float = 30
    workers: int = 8  # concurrent batched workers (drain and steady state)
    producers: int = 4
    batch: int = 100
    naive_workers: int = 16
    enqueue_connections: int = 16
    batch_enqueue_connections: int = 4
    wake_jobs: int = 200
    wake_gap_ms: float = 20
    sdk_concurrency: int = 100
    procrastinate_concurrency: int = 4
    peers: bool = True


def cases(c: Config) -> list[Case]:
    peers = PEERS if c.peers else ()
    out: list[Case] = []
    for size, conns in (
        (1, c.enqueue_connections),
        (100, c.batch_enqueue_connections),
        (500, c.batch_enqueue_connections),
    ):
        title = "enqueue, one job per request" if size == 1 else f"enqueue, batches of {size}"
        for system in ("jobbroker", "raw", *peers):
            p = {"jobs": c.jobs, "batch": size, "connections": conns}
            out.append(Case(f"enqueue_{size}", title, system, "enqueue", p))
    drain = {"jobs": c.jobs, "workers": c.workers, "batch": c.batch, "concurrency": c.procrastinate_concurrency}
    for system in ("jobbroker", "raw", *peers):
        out.append(
            Case("drain", f"drain, {c.workers} workers x lease {c.batch} + batch ack", system, "drain", drain, c.jobs)
        )
    steady = {
        "duration_s": c.duration_s,
        "workers": c.workers,
        "producers": c.producers,
        "batch": c.batch,
        "concurrency": c.procrastinate_concurrency,
    }
    title = f"steady state {c.duration_s:g} s, {c.producers} producers x {c.batch} + {c.workers} workers"
    for system in ("jobbroker", "raw", *peers):
        out.append(Case("steady", title, system, "steady", steady))
    naive = {"jobs": c.jobs, "workers": c.naive_workers}
    for system in ("jobbroker", "raw"):
        title = f"unbatched, {c.naive_workers} workers x (lease 1 + ack 1)"
        out.append(Case("unbatched", title, system, "unbatched", naive, c.jobs))
    wake = {"jobs": c.wake_jobs, "gap_ms": c.wake_gap_ms}
    out.append(Case("wake", f"wake latency, {c.wake_jobs} jobs {c.wake_gap_ms:g} ms apart", "jobbroker", "wake", wake))
    sdk = {"jobs": c.jobs, "concurrency": c.sdk_concurrency}
    out.append(Case("sdk", f"SDK Worker, 1 process, concurrency {c.sdk_concurrency}", "sdk", "drain", sdk, c.jobs))
    return out


def soak_case(c: Config, duration_s: float) -> Case:
    p = {"duration_s": duration_s, "workers": c.workers, "producers": c.producers, "batch": c.batch}
    return Case("soak", f"soak: steady state {duration_s:g} s", "jobbroker", "steady", p)
