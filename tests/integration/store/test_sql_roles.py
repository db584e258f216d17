"""`jobbroker grants`: an enqueue-only role and an ack/nack-only role can do what the docs say and
nothing else. Roles are cluster-wide: each test makes its own, uniquely named, and drops them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from jobbroker.store.db import plain_url


@pytest.fixture
async def roles(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, str, str]]:
    """A superuser connection that runs `jobbroker grants`' output, and the two roles' names."""
    suffix = uuid.uuid4().hex[:8]
    producer, worker = f"app_enqueue_{suffix}", f"app_worker_{suffix}"
    printed = subprocess.run(  # noqa: ASYNC221 (a short CLI run before the test)
        [sys.executable, "-m", "jobbroker", "grants", "--enqueue-role", producer, "--worker-role", worker],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": ""},
    ).stdout
    conn = await asyncpg.connect(plain_url(database_url))
    await conn.execute(f"CREATE ROLE {producer}; CREATE ROLE {worker};")
    await conn.execute(printed)
    yield conn, producer, worker
    await conn.execute("RESET ROLE")
    for role in (producer, worker):
        await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
    await conn.close()


async def as_role(conn: asyncpg.Connection, role: str, sql: str, *args: object) -> object:
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        return await conn.fetchval(sql, *args)


FORBIDDEN = [
    "SELECT count(*) FROM jobbroker.job",
    "UPDATE jobbroker.job SET priority = 1",
    "INSERT INTO jobbroker.queue (name) VALUES ('x')",
    "SELECT jobbroker.job_enqueue_body('t', '{}', '{}', 1000)",
    "SELECT jobbroker.job_failure_state(false, true, 1, 2)",
    "SELECT jobbroker.job_defaults()",
]


async def test_the_enqueue_role_may_enqueue_and_nothing_else(roles, client: httpx.AsyncClient) -> None:
    conn, producer, _ = roles
    job_id = await as_role(conn, producer, "SELECT jobbroker.enqueue('orders', 'email', '{\"to\": \"ada\"}')")
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["payload"] == {"to": "ada"}
    for sql in [
        *FORBIDDEN,
        "SELECT jobbroker.ack(1, gen_random_uuid())",
        "SELECT jobbroker.nack(1, gen_random_uuid(), '{}')",
    ]:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_role(conn, producer, sql)


async def test_the_worker_role_may_ack_and_nack_and_nothing_else(roles, client: httpx.AsyncClient) -> None:
    conn, _, worker = roles
    await client.post("/v1/queues/orders/jobs:batch", json={"jobs": [{"type": "email"}, {"type": "email"}]})
    leased = (await client.post("/v1/queues/orders/leases", json={"worker_id": "w", "max_jobs": 2})).json()["jobs"]
    first, second = (int(j["id"]) for j in leased)
    assert await as_role(conn, worker, "SELECT jobbroker.ack($1, $2::uuid, '1')", first, leased[0]["lease_id"])
    assert await as_role(
        conn, worker, "SELECT jobbroker.nack($1, $2::uuid, '\"no\"', false)", second, leased[1]["lease_id"]
    )
    states = [(await client.get(f"/v1/jobs/{i}")).json()["state"] for i in (first, second)]
    assert states == ["succeeded", "dead"]
    for sql in [*FORBIDDEN, "SELECT jobbroker.enqueue('orders', 'email', '{}')"]:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_role(conn, worker, sql)


def test_grants_refuses_a_role_name_that_is_not_plain() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jobbroker", "grants", "--enqueue-role", "x; DROP TABLE job"],
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert done.returncode == 2 and "not a plain role name" in done.stderr and done.stdout == ""
