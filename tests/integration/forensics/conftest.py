"""Failure forensics against real server processes, and the helpers their tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from jobbroker.settings import DbSettings
from jobbroker.store.db import plain_url

# Dead jobs made directly in SQL, as the nack path leaves them (error history, fingerprint), so a
# test can have 100,000 of them in a second.
DEAD_JOBS = """
INSERT INTO job (queue, type, payload, state, attempts, max_attempts, backoff_initial_s, backoff_max_s,
                 backoff_multiplier, backoff_jitter, timeout_s, finished_at, errors, last_fingerprint)
SELECT $1, 't', jsonb_build_object('n', i, 'note', repeat('x', 200)), 'dead', 1, 1, 1, 60, 2, 0, 30, now(),
       jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'worker_id', 'w',
                                            'error', jsonb_build_object('type', 'E', 'message', 'failed ' || i))),
       job_fingerprint(jsonb_build_object('type', 'E', 'message', 'failed ' || i))
FROM generate_series(1, $2) AS i
"""


async def connect(database_url: str) -> asyncpg.Connection:
    """Direct SQL in the broker's schema."""
    return await asyncpg.connect(plain_url(database_url), server_settings={"search_path": DbSettings().schema_name})


async def make_dead_jobs(database_url: str, queue: str, n: int) -> None:
    conn = await connect(database_url)
    try:
        await conn.execute(DEAD_JOBS, queue, n)
    finally:
        await conn.close()


@pytest.fixture
async def http(broker_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=broker_url, timeout=30) as c:
        yield c
