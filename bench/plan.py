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
    prefill: int | dict[str, Any] = 0  # jobs preloaded for `system`, or parts of a backlog (bench/backlog.py)
    label: str = ""  # how the row is named when one system runs several variants of a scenario

    @property
    def name(self) -> str:
        return self.label or self.system


@dataclass(frozen=True)
class Config:
    jobs: int = 20_000
    duration_s: float = 15
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
    # Procrastinate drains a few hundred jobs a second: its drain takes this many jobs, not `jobs`.
    procrastinate_drain_jobs: int = 2_000
    # One job per call (enqueue, unbatched) is slow by nature: these cases take a share of `jobs`.
    single_share: float = 0.25
    unbatched_share: float = 0.5
    # The no-cliff scenarios: delayed jobs ahead of the ready ones, a big backlog, another queue's.
    delayed: int = 200_000
    backlog: int = 1_000_000
    other_backlog: int = 200_000
    empty_leases: int = 500
    peers: bool = True


def cases(c: Config) -> list[Case]:
    peers = PEERS if c.peers else ()
    ceilings = ("minimal", "raw")
    out: list[Case] = []
    for size, conns in (
        (1, c.enqueue_connections),
        (100, c.batch_enqueue_connections),
        (500, c.batch_enqueue_connections),
    ):
        title = "enqueue, one job per request" if size == 1 else f"enqueue, batches of {size}"
        jobs = int(c.jobs * c.single_share) if size == 1 else c.jobs
        for system in ("jobbroker", *ceilings, *peers):
            p = {"jobs": jobs, "batch": size, "connections": conns}
            out.append(Case(f"enqueue_{size}", title, system, "enqueue", p))
    for system in ("jobbroker", *ceilings, *peers):
        jobs = c.procrastinate_drain_jobs if system == "procrastinate" else c.jobs
        drain = {"jobs": jobs, "workers": c.workers, "batch": c.batch, "concurrency": c.procrastinate_concurrency}
        out.append(
            Case("drain", f"drain, {c.workers} workers x lease {c.batch} + batch ack", system, "drain", drain, jobs)
        )
    steady = {
        "duration_s": c.duration_s,
        "workers": c.workers,
        "producers": c.producers,
        "batch": c.batch,
        "concurrency": c.procrastinate_concurrency,
    }
    title = f"steady state {c.duration_s:g} s, {c.producers} producers x {c.batch} + {c.workers} workers"
    for system in ("jobbroker", *ceilings, *peers):
        out.append(Case("steady", title, system, "steady", steady))
    naive_jobs = int(c.jobs * c.unbatched_share)
    naive = {"jobs": naive_jobs, "workers": c.naive_workers}
    for system in ("jobbroker", *ceilings):
        title = f"unbatched, {c.naive_workers} workers x (lease 1 + ack 1)"
        out.append(Case("unbatched", title, system, "unbatched", naive, naive_jobs))
    wake = {"jobs": c.wake_jobs, "gap_ms": c.wake_gap_ms}
    out.append(Case("wake", f"wake latency, {c.wake_jobs} jobs {c.wake_gap_ms:g} ms apart", "jobbroker", "wake", wake))
    sdk = {"jobs": c.jobs, "concurrency": c.sdk_concurrency}
    out.append(Case("sdk", f"SDK Worker, 1 process, concurrency {c.sdk_concurrency}", "sdk", "drain", sdk, c.jobs))
    return out + cliff_cases(c)


def cliff_cases(c: Config) -> list[Case]:
    """No cliff: what delayed jobs, a big backlog and other queues' jobs cost a lease, each variant
    against the same scenario on a plain queue, side by side in one run."""
    out: list[Case] = []
    empty = {"leases": c.empty_leases, "batch": c.batch}
    title = f"empty lease (max_jobs {c.batch}), {c.empty_leases} in a row"
    for label, prefill in (
        ("empty queue", {}),
        (f"{c.delayed:,} delayed", {"delayed": c.delayed}),
        (f"{c.other_backlog:,} in another queue", {"other": c.other_backlog}),
    ):
        out.append(Case("cliff_empty", title, "jobbroker", "empty_leases", empty, prefill, label))
    drain = {"jobs": c.jobs, "workers": c.workers, "batch": c.batch}
    title = f"drain {c.jobs:,} ready jobs of priority 1, {c.workers} workers x lease {c.batch}"
    for label, prefill in (
        ("unobstructed", {"ready": c.jobs, "ready_priority": 1}),
        (f"behind {c.delayed:,} delayed", {"ready": c.jobs, "ready_priority": 1, "delayed": c.delayed}),
    ):
        out.append(Case("cliff_delayed", title, "jobbroker", "drain", drain, prefill, label))
    title = f"drain the first {c.jobs:,} jobs of a queue, {c.workers} workers x lease {c.batch}"
    for label, size in ((f"{c.jobs:,} queued", c.jobs), (f"{c.backlog:,} queued", c.backlog)):
        p = {**drain, "limit": c.jobs}
        out.append(Case("cliff_backlog", title, "jobbroker", "drain", p, {"ready": size}, label))
    return out


def soak_case(c: Config, duration_s: float) -> Case:
    p = {"duration_s": duration_s, "workers": c.workers, "producers": c.producers, "batch": c.batch}
    return Case("soak", f"soak: steady state {duration_s:g} s", "jobbroker", "steady", p)
