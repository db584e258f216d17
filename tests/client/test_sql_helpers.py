"""jobbroker_client.sql on each driver an application may hold: a job enqueued in a rolled-back
transaction never exists, a committed one does; ack and nack in the application's transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from jobbroker.store.db import plain_url
from jobbroker_client import sql


@contextmanager
def psycopg_tx(url: str, commit: bool):
    with psycopg.connect(url) as conn:
        yield conn
        conn.commit() if commit else conn.rollback()


@contextmanager
def sqlalchemy_tx(url: str, commit: bool, session: bool):
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            target = Session(bind=conn) if session else conn
            yield target
            target.commit() if commit else target.rollback()
    finally:
        engine.dispose()


@asynccontextmanager
async def asyncpg_tx(url: str, commit: bool) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(url)
    try:
        tx = conn.transaction()
        await tx.start()
        yield conn
        await (tx.commit() if commit else tx.rollback())
    finally:
        await conn.close()


@asynccontextmanager
async def apsycopg_tx(url: str, commit: bool) -> AsyncIterator[Any]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        yield conn
        await (conn.commit() if commit else conn.rollback())


@asynccontextmanager
async def asqlalchemy_tx(url: str, commit: bool, session: bool) -> AsyncIterator[Any]:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    try:
        async with engine.connect() as conn:
            target = AsyncSession(bind=conn) if session else conn
            yield target
            await (target.commit() if commit else target.rollback())
    finally:
        await engine.dispose()


SYNC: dict[str, Callable[..., Any]] = {
    "psycopg": psycopg_tx,
    "sqlalchemy-connection": lambda url, commit: sqlalchemy_tx(url, commit, session=False),
    "sqlalchemy-session": lambda url, commit: sqlalchemy_tx(url, commit, session=True),
}
ASYNC: dict[str, Callable[..., Any]] = {
    "asyncpg": asyncpg_tx,
    "psycopg-async": apsycopg_tx,
    "sqlalchemy-async-connection": lambda url, commit: asqlalchemy_tx(url, commit, session=False),
    "sqlalchemy-async-session": lambda url, commit: asqlalchemy_tx(url, commit, session=True),
}


async def lease(client: httpx.AsyncClient, queue: str) -> dict[str, Any]:
    [job] = (await client.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w"})).json()["jobs"]
    return job


@pytest.mark.parametrize("driver", sorted(SYNC))
async def test_sync_helpers_enqueue_ack_and_nack_in_the_applications_transaction(
    driver: str, database_url: str, client: httpx.AsyncClient
) -> None:
    url, tx, queue = plain_url(database_url), SYNC[driver], f"sdk-{uuid.uuid4().hex[:8]}"
    with tx(url, commit=False) as conn:
        gone = sql.enqueue(conn, queue, "email", {"to": "ada"})
    with tx(url, commit=True) as conn:
        kept = sql.enqueue(conn, queue, "email", {"to": "ada"}, priority=2, tags=["x"], idempotency_key="k1")
        assert sql.enqueue(conn, queue, "email", {"to": "ada"}, idempotency_key="k1") == kept
    assert (await client.get(f"/v1/jobs/{gone}")).status_code == 404
    assert (await client.get(f"/v1/jobs/{kept}")).json()["priority"] == 2
    job = await lease(client, queue)
    with tx(url, commit=False) as conn:
        assert sql.ack(conn, job["id"], job["lease_id"], {"ok": True})
    assert (await client.get(f"/v1/jobs/{kept}")).json()["state"] == "active"
    with tx(url, commit=True) as conn:
        assert not sql.ack(conn, job["id"], str(uuid.uuid4()))
        assert sql.nack(conn, job["id"], job["lease_id"], "smtp down", retryable=False)
    assert (await client.get(f"/v1/jobs/{kept}")).json()["state"] == "dead"


@pytest.mark.parametrize("driver", sorted(ASYNC))
async def test_async_helpers_enqueue_ack_and_nack_in_the_applications_transaction(
    driver: str, database_url: str, client: httpx.AsyncClient
) -> None:
    url, tx, queue = plain_url(database_url), ASYNC[driver], f"sdk-{uuid.uuid4().hex[:8]}"
    async with tx(url, commit=False) as conn:
        gone = await sql.enqueue_async(conn, queue, "email", [1, 2])
    async with tx(url, commit=True) as conn:
        kept = await sql.enqueue_async(conn, queue, "email", [1, 2], delay_seconds=0, max_attempts=3)
    assert (await client.get(f"/v1/jobs/{gone}")).status_code == 404
    assert (await client.get(f"/v1/jobs/{kept}")).json()["payload"] == [1, 2]
    job = await lease(client, queue)
    async with tx(url, commit=True) as conn:
        assert await sql.nack_async(conn, job["id"], job["lease_id"], {"message": "later"}, retry_in_seconds=0)
    job = await lease(client, queue)
    async with tx(url, commit=True) as conn:
        assert await sql.ack_async(conn, job["id"], job["lease_id"], {"done": 1})
    assert (await client.get(f"/v1/jobs/{kept}")).json()["result"] == {"done": 1}


def test_an_unknown_connection_or_schema_is_refused() -> None:
    with pytest.raises(TypeError, match="unsupported connection"):
        sql.enqueue(object(), "q", "t")
    with pytest.raises(ValueError, match="schema"):
        sql.ack(object(), 1, "x", schema="x; drop")
