"""CPU accounting for one measured window: the broker's processes, Postgres, and the load generator.

The machine is shared, so Postgres is counted as the backends of the bench database plus the
server's own processes (WAL writer, checkpointer, ...), never the backends of other databases.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import asyncpg
import psutil


def _cpu(proc: psutil.Process) -> float | None:
    try:
        t = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return t.user + t.system


def process_tree(pid: int) -> list[int]:
    try:
        parent = psutil.Process(pid)
        return [pid, *(c.pid for c in parent.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


async def postgres_pids(dsn: str) -> set[int]:
    """Postgres processes that work for the bench database or for the whole server."""
    conn = await asyncpg.connect(dsn)
    try:
        others = {
            r["pid"]
            for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname IS NOT NULL AND datname <> current_database()"
            )
        }
    finally:
        await conn.close()
    pids = set()
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.pid not in others:
            pids.add(proc.pid)
    return pids


@dataclass
class CpuMeter:
    """CPU seconds per group between `start` and `stop`, and as % of one core over the window."""

    dsn: str
    groups: dict[str, list[int]]
    _start: dict[int, float] = field(default_factory=dict)
    _pg: set[int] = field(default_factory=set)
    _t0: float = 0.0

    async def start(self) -> None:
        self._pg = await postgres_pids(self.dsn)
        self._t0 = time.perf_counter()
        for pid in self._all_pids():
            value = _cpu(psutil.Process(pid)) if psutil.pid_exists(pid) else None
            if value is not None:
                self._start[pid] = value

    async def stop(self) -> dict[str, dict[str, float]]:
        wall = time.perf_counter() - self._t0
        ends = {pid: _cpu_of(pid) for pid in self._all_pids()}
        # Backends opened during the window (a new pool connection) count from zero.
        new_pg = (await postgres_pids(self.dsn)) - self._pg
        ends.update({pid: _cpu_of(pid) for pid in new_pg})
        named = {**self.groups, "postgres": [*self._pg, *new_pg], "loadgen": [os.getpid()]}
        out = {}
        for name, pids in named.items():
            spent = sum((ends.get(p) or 0.0) - self._start.get(p, 0.0) for p in pids if ends.get(p) is not None)
            out[name] = {"cpu_s": round(spent, 2), "cpu_pct": round(100 * spent / wall, 1) if wall else 0.0}
        return out

    def _all_pids(self) -> list[int]:
        return [*(p for pids in self.groups.values() for p in pids), *self._pg, os.getpid()]


def _cpu_of(pid: int) -> float | None:
    try:
        return _cpu(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return None
