"""The run's fixtures: a fresh database, a production-style broker process, and load-generator runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import psutil

from bench import backlog
from bench.cpu import process_tree
from bench.systems import minimal, pgqueuer_peer, procrastinate_peer, raw
from jobbroker.settings import Settings
from jobbroker.store import migrate

REPO = Path(__file__).resolve().parents[1]
PREFILL = {"jobbroker": raw.prefill, "raw": raw.prefill, "sdk": raw.prefill, "minimal": minimal.prefill}
PEER_PREFILL = {"procrastinate": procrastinate_peer.prefill, "pgqueuer": pgqueuer_peer.prefill}


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class BenchDatabase:
    """A database made for this run (bench_<hex>) with every system's schema; dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"bench_{uuid.uuid4().hex[:8]}"
        self.url = with_database(admin_url, self.name)

    async def create(self, peers: bool) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        await migrate.upgrade(self.url)
        await minimal.install(self.url)
        if peers:
            await procrastinate_peer.install(self.url)
            await pgqueuer_peer.install(self.url)

    async def drop(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def reset(self, system: str, prefill: int | dict[str, Any]) -> None:
        """Empty every system's tables, load `prefill` jobs for `system`, and checkpoint so that a
        checkpoint triggered by the previous run does not land in this one."""
        conn = await asyncpg.connect(self.url)
        try:
            tables = await conn.fetch(
                "SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables"
                " WHERE (schemaname = 'jobbroker' AND tablename IN ('job', 'queue'))"
                " OR (schemaname = 'public' AND (tablename LIKE 'procrastinate%' OR tablename LIKE 'pgqueuer%')"
                " AND tablename NOT LIKE '%version%')"
            )
            names = [*(t["name"] for t in tables), *minimal.TABLES]
            await conn.execute(f"TRUNCATE {', '.join(names)} CASCADE")
        finally:
            await conn.close()
        if isinstance(prefill, dict):
            await backlog.fill(self.url, prefill)
        elif prefill:
            await {**PREFILL, **PEER_PREFILL}[system](self.url, prefill)
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute("VACUUM ANALYZE")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerServer:
    """The broker exactly as `make serve` starts it: `.venv/bin/jobbroker serve` at its defaults.

    Its environment is the bench's own without any JOBBROKER_* variable, plus the two a run must
    choose: the database made for the run and a free port. `workers` (--broker-workers) is for
    experiments only; a default run passes no option.
    """

    def __init__(self, database_url: str, workers: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")},
            "JOBBROKER_DATABASE_URL": database_url,
            "JOBBROKER_PORT": str(self.port),
        }
        self.log = tempfile.NamedTemporaryFile(prefix="jobbroker-bench-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """The Makefile's `serve` recipe, `$(BIN)/jobbroker serve`, in this venv."""
        extra = ["--workers", str(self.workers)] if self.workers is not None else []
        return [str(Path(sys.executable).parent / "jobbroker"), "serve", *extra]

    @property
    def processes(self) -> int:
        """The worker processes it runs: as `serve` resolves its defaults with no JOBBROKER_* set."""
        return self.workers if self.workers is not None else Settings(workers="auto").serve_workers()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited: {Path(self.log.name).read_text()[-3000:]}")
            try:
                # With several workers, uvicorn's supervisor process comes on top of them.
                spawned = self.processes == 1 or len(self.pids()) > self.processes
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200 and spawned:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("broker did not become ready")

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return round(total / 2**20, 1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run_load(spec: dict[str, Any], broker: BrokerServer | None, sample_rss_every_s: float = 0) -> dict[str, Any]:
    """Run one scenario in a fresh load-generator process; optionally sample the broker's RSS meanwhile."""
    spec = {**spec, "broker_pids": broker.pids() if broker else []}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", json.dumps(spec)], cwd=REPO, stdout=out, stderr=err
        )
        rss: list[tuple[float, float]] = []
        started = time.monotonic()
        while proc.poll() is None:
            if (
                broker
                and sample_rss_every_s
                and (not rss or time.monotonic() - started - rss[-1][0] >= sample_rss_every_s)
            ):
                rss.append((round(time.monotonic() - started, 1), broker.rss_mb()))
            time.sleep(0.2)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(
                f"load generator failed ({spec['system']} {spec['scenario']}): {err.read().decode()[-3000:]}"
            )
        answer = json.loads(out.read().decode().strip().splitlines()[-1])
    if rss:
        answer["rss_mb_series"] = rss
    return answer


def reset(db: BenchDatabase, system: str, prefill: int | dict[str, Any]) -> None:
    asyncio.run(db.reset(system, prefill))
