"""jobbroker.enqueue / ack / nack called in an application's own transaction, on a connection with
the application's search_path (not the broker's), next to an application table named job.

Uses the session database and unique queue names; the long-poll test runs a real server process.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from jobbroker.store.db import plain_url
from support import BrokerProcess


@pytest.fixture
async def app_conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """An application's connection: default search_path, a table of its own named job."""
    conn = await asyncpg.connect(plain_url(database_url))
    await conn.execute("CREATE TABLE IF NOT EXISTS public.job (id serial PRIMARY KEY, title text)")
    assert await conn.fetchval("SHOW search_path") == '"$user", public'
    yield conn
    await conn.close()


@pytest.fixture
def queue() -> str:
    return f"sql-{uuid.uuid4().hex[:10]}"


async def enqueue(conn: asyncpg.Connection, queue: str, type: str = "t", payload: str = "{}", options: str = "{}"):
    return await conn.fetchval("SELECT jobbroker.enqueue($1, $2, $3::jsonb, $4::jsonb)", queue, type, payload, options)


async def lease(client: httpx.AsyncClient, queue: str) -> dict:
    [job] = (await client.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w"})).json()["jobs"]
    return job


async def test_a_job_exists_if_and_only_if_its_transaction_commits(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    tx = app_conn.transaction()
    await tx.start()
    await app_conn.execute("INSERT INTO job (title) VALUES ('an application row')")
    rolled_back = await enqueue(app_conn, queue, payload='{"order": 1}')
    await tx.rollback()
    assert (await client.get(f"/v1/jobs/{rolled_back}")).status_code == 404
    async with app_conn.transaction():
        committed = await enqueue(app_conn, queue, payload='{"order": 2}', options='{"priority": 3, "tags": ["a"]}')
    job = (await client.get(f"/v1/jobs/{committed}")).json()
    assert (job["state"], job["payload"], job["priority"], job["tags"]) == ("pending", {"order": 2}, 3, ["a"])
    assert job["max_attempts"] == 5 and job["timeout_seconds"] == 30  # the broker's defaults
    assert (await lease(client, queue))["id"] == str(committed)


async def test_options_take_every_enqueue_field(app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str):
    options = (
        '{"run_at": "2030-01-02T03:04:05Z", "max_attempts": 2, "timeout_seconds": 7, "correlation_id": "c-1",'
        ' "idempotency_key": "k", "backoff": {"initial_seconds": 2, "max_seconds": 9, "multiplier": 3, "jitter": 0}}'
    )
    job = (await client.get(f"/v1/jobs/{await enqueue(app_conn, queue, options=options)}")).json()
    assert job["run_at"].startswith("2030-01-02T03:04:05") and job["max_attempts"] == 2
    assert job["timeout_seconds"] == 7 and job["correlation_id"] == "c-1" and job["idempotency_key"] == "k"
    assert job["backoff"] == {"initial_seconds": 2, "max_seconds": 9, "multiplier": 3, "jitter": 0}
    delayed_id = await enqueue(app_conn, queue, options='{"delay_seconds": 60}')
    delayed = (await client.get(f"/v1/jobs/{delayed_id}")).json()
    assert delayed["run_at"] > delayed["created_at"]


@pytest.mark.parametrize(
    ("args", "sqlstate", "says"),
    [
        (("bad queue!", "t", "{}", "{}"), "22023", "queue"),
        (("q", "has space", "{}", "{}"), "22023", "type"),
        (("q", "t", None, "{}"), "22004", "payload"),
        (("q", "t", "{}", '{"colour": 1}'), "22023", "option colour"),
        (("q", "t", "{}", '{"priority": 1.5}'), "22023", "option priority"),
        (("q", "t", "{}", '{"priority": "1"}'), "22023", "option priority"),
        (("q", "t", "{}", '{"max_attempts": 0}'), "22023", "option max_attempts"),
        (("q", "t", "{}", '{"delay_seconds": 1, "run_at": "2030-01-01T00:00:00Z"}'), "22023", "not both"),
        (("q", "t", "{}", '{"run_at": "tomorrow"}'), "22023", "option run_at"),
        (("q", "t", "{}", '{"backoff": {"initial_seconds": 5, "max_seconds": 1}}'), "22023", "backoff"),
        (("q", "t", "{}", '{"tags": [1]}'), "22023", "option tags"),
        (("q", "t", "{}", '{"idempotency_key": ""}'), "22023", "option idempotency_key"),
        (("q", "t", "{}", "[]"), "22023", "options"),
    ],
)
async def test_bad_arguments_raise_a_clear_error_and_write_nothing(
    app_conn: asyncpg.Connection, pool: asyncpg.Pool, args: tuple, sqlstate: str, says: str
) -> None:
    before = await pool.fetchval("SELECT count(*) FROM job")
    with pytest.raises(asyncpg.PostgresError) as raised:
        await app_conn.fetchval("SELECT jobbroker.enqueue($1, $2, $3::jsonb, $4::jsonb)", *args)
    assert raised.value.sqlstate == sqlstate and says in raised.value.args[0]
    assert await pool.fetchval("SELECT count(*) FROM job") == before


async def test_a_payload_over_the_limit_is_refused(app_conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ProgramLimitExceededError, match="exceeds 262144 bytes"):
        await enqueue(app_conn, "q", payload=f'"{"x" * 262_144}"')


async def test_an_idempotency_key_holds_across_sql_and_http(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    body = {"type": "t", "payload": {"n": 1}, "idempotency_key": "order-7"}
    first = await enqueue(app_conn, queue, payload='{"n": 1}', options='{"idempotency_key": "order-7"}')
    over_http = await client.post(f"/v1/queues/{queue}/jobs", json=body)
    assert over_http.status_code == 200 and over_http.json()["duplicate"] and over_http.json()["id"] == str(first)
    assert await enqueue(app_conn, queue, payload='{"n": 1}', options='{"idempotency_key": "order-7"}') == first
    made = (await client.post(f"/v1/queues/{queue}/jobs", json={**body, "idempotency_key": "order-8"})).json()
    assert await enqueue(app_conn, queue, payload='{"n": 1}', options='{"idempotency_key": "order-8"}') == int(
        made["id"]
    )
    with pytest.raises(asyncpg.UniqueViolationError, match=f"held by job {first}"):
        await enqueue(app_conn, queue, payload='{"n": 2}', options='{"idempotency_key": "order-7"}')


async def test_an_ack_rolled_back_leaves_the_job_active_and_committed_makes_it_succeeded(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})
    job = await lease(client, queue)
    tx = app_conn.transaction()
    await tx.start()
    assert await app_conn.fetchval(
        "SELECT jobbroker.ack($1, $2::uuid, '{\"sent\": true}')", int(job["id"]), job["lease_id"]
    )
    await tx.rollback()
    assert (await client.get(f"/v1/jobs/{job['id']}")).json()["state"] == "active"
    async with app_conn.transaction():
        await app_conn.execute("INSERT INTO job (title) VALUES ('the business write')")
        assert await app_conn.fetchval(
            "SELECT jobbroker.ack($1, $2::uuid, '{\"sent\": true}')", int(job["id"]), job["lease_id"]
        )
    done = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert (done["state"], done["result"]) == ("succeeded", {"sent": True})


async def test_a_stale_lease_changes_nothing(app_conn: asyncpg.Connection, client: httpx.AsyncClient, pool, queue):
    await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})
    job = await lease(client, queue)
    before = await pool.fetchrow("SELECT * FROM job WHERE id = $1", int(job["id"]))
    stale = str(uuid.uuid4())
    assert not await app_conn.fetchval("SELECT jobbroker.ack($1, $2::uuid)", int(job["id"]), stale)
    assert not await app_conn.fetchval(
        'SELECT jobbroker.nack($1, $2::uuid, \'{"message": "x"}\')', int(job["id"]), stale
    )
    assert not await app_conn.fetchval("SELECT jobbroker.ack($1, $2::uuid)", 999_999_999, stale)
    assert await pool.fetchrow("SELECT * FROM job WHERE id = $1", int(job["id"])) == before


async def test_a_nack_retries_with_backoff_and_records_the_error(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t", "max_attempts": 2})
    job = await lease(client, queue)
    error = '{"message": "smtp down", "type": "SMTPError", "details": {"code": 421, "x": null}}'
    async with app_conn.transaction():
        assert await app_conn.fetchval(
            "SELECT jobbroker.nack($1, $2::uuid, $3::jsonb, true, 120)", int(job["id"]), job["lease_id"], error
        )
    retried = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert retried["state"] == "retrying" and retried["run_at"] > retried["updated_at"]
    assert retried["errors"][0]["error"] == {
        "message": "smtp down",
        "type": "SMTPError",
        "details": {"code": 421, "x": None},
    }
    assert retried["errors"][0]["attempt"] == 1 and retried["errors"][0]["worker_id"] == "w"
    await app_conn.execute("UPDATE jobbroker.job SET run_at = now() WHERE id = $1", int(job["id"]))
    again = await lease(client, queue)
    assert await app_conn.fetchval("SELECT jobbroker.nack($1, $2::uuid, NULL)", int(job["id"]), again["lease_id"])
    dead = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert dead["state"] == "dead" and dead["errors"][1]["error"] == {"message": "unspecified error"}
    with pytest.raises(asyncpg.InvalidParameterValueError, match="error"):
        await app_conn.fetchval("SELECT jobbroker.nack(1, $1::uuid, '{\"colour\": 1}')", str(uuid.uuid4()))


async def test_the_functions_ignore_the_callers_search_path(database_url: str, queue: str) -> None:
    """A caller whose search_path has a look-alike job table and function gets the broker's."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        await conn.execute(
            "CREATE SCHEMA IF NOT EXISTS decoy;"
            "CREATE TABLE IF NOT EXISTS decoy.job (id bigint, queue text);"
            "CREATE OR REPLACE FUNCTION decoy.job_enqueue_many(text, jsonb, jsonb) RETURNS void"
            " LANGUAGE sql AS 'SELECT 1/0';"
            "SET search_path = decoy, public"
        )
        job_id = await conn.fetchval("SELECT jobbroker.enqueue($1, 't', '{}')", queue)
        assert await conn.fetchval("SELECT count(*) FROM decoy.job") == 0
        assert await conn.fetchval("SELECT queue FROM jobbroker.job WHERE id = $1", job_id) == queue
    finally:
        await conn.close()


@pytest.mark.timeout(60)
async def test_a_long_poll_over_http_wakes_on_the_commit_not_before(broker_process: BrokerProcess, queue: str):
    conn = await asyncpg.connect(plain_url(broker_process.database_url))
    try:
        async with httpx.AsyncClient(base_url=broker_process.url, timeout=30) as http:
            waiting = asyncio.create_task(
                http.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "wait_seconds": 20})
            )
            await asyncio.sleep(0.5)  # the lease is waiting
            tx = conn.transaction()
            await tx.start()
            job_id = await enqueue(conn, queue)
            await asyncio.sleep(0.5)
            assert not waiting.done(), "woken before the commit"
            await tx.commit()
            committed = time.monotonic()
            answer = await waiting
            woke_s = time.monotonic() - committed
        assert [j["id"] for j in answer.json()["jobs"]] == [str(job_id)]
        assert woke_s < 0.25, f"woke {woke_s * 1000:.0f} ms after the commit"
    finally:
        await conn.close()


@pytest.mark.timeout(60)
async def test_a_rolled_back_enqueue_wakes_nobody(broker_process: BrokerProcess, queue: str) -> None:
    conn = await asyncpg.connect(plain_url(broker_process.database_url))
    try:
        async with httpx.AsyncClient(base_url=broker_process.url, timeout=30) as http:
            waiting = asyncio.create_task(
                http.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "wait_seconds": 1.5})
            )
            await asyncio.sleep(0.3)
            tx = conn.transaction()
            await tx.start()
            await enqueue(conn, queue)
            await tx.rollback()
            started = time.monotonic()
            answer = await waiting
        assert answer.json()["jobs"] == [] and time.monotonic() - started > 0.8
    finally:
        await conn.close()


async def test_enqueue_takes_the_flow_key_and_the_clocks(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    await client.patch(
        f"/v1/queues/{queue}", json={"default_max_runtime_seconds": 600, "flow": {"max_concurrency_per_key": 1}}
    )
    options = '{"flow_key": "acme", "visibility_timeout_seconds": 40, "heartbeat_timeout_seconds": 5}'
    async with app_conn.transaction():
        first = await enqueue(app_conn, queue, options=options)
        await enqueue(app_conn, queue, options='{"flow_key": "acme"}')
    job = (await client.get(f"/v1/jobs/{first}")).json()
    clocks = (job["timeout_seconds"], job["heartbeat_timeout_seconds"], job["max_runtime_seconds"])
    assert (job["flow_key"], *clocks) == ("acme", 40, 5, 600)
    # The key is registered (whatever the caller's search_path) and its limit holds.
    assert (await client.get(f"/v1/queues/{queue}/keys/acme")).json()["ready"] == 2
    assert (
        len((await client.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "max_jobs": 5})).json()["jobs"])
        == 1
    )
    with pytest.raises(asyncpg.InvalidParameterValueError, match="flow_key"):
        await enqueue(app_conn, queue, options='{"flow_key": ""}')


async def test_sql_nacks_and_acks_write_the_ledger_and_the_fingerprint_http_nacks_do(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str
) -> None:
    await enqueue(app_conn, queue, options='{"max_attempts": 2, "backoff": {"initial_seconds": 0.01}}')
    job = await lease(client, queue)
    failed = await app_conn.fetchval(
        'SELECT jobbroker.nack($1, $2::uuid, \'{"type": "Timeout", "message": "timeout after 31 ms"}\')',
        int(job["id"]),
        job["lease_id"],
    )
    assert failed
    await asyncio.sleep(0.05)
    again = await lease(client, queue)
    assert await app_conn.fetchval("SELECT jobbroker.ack($1, $2::uuid)", int(job["id"]), again["lease_id"])
    attempts = (await client.get(f"/v1/jobs/{job['id']}/attempts")).json()["items"]
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "failed"), (2, "succeeded")]
    # The same fingerprint as an HTTP nack of a message that differs only in its numbers.
    other = f"{queue}-http"
    await client.post(f"/v1/queues/{other}/jobs", json={"type": "t", "max_attempts": 1})
    held = await lease(client, other)
    dead = await client.post(
        f"/v1/jobs/{held['id']}/nack",
        json={"lease_id": held["lease_id"], "error": {"type": "Timeout", "message": "timeout after 9000 ms"}},
    )
    assert attempts[0]["fingerprint"] == dead.json()["last_fingerprint"] is not None
    stored = (await client.get(f"/v1/jobs/{job['id']}")).json()
    assert stored["errors"][0]["fingerprint"] == attempts[0]["fingerprint"]


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "options",
    [
        f'{{"trace_context": {{"traceparent": "{TRACEPARENT}", "tracestate": "vendor=abc"}}}}',
        f'{{"traceparent": "{TRACEPARENT}", "tracestate": "vendor=abc"}}',
    ],
    ids=["trace_context", "traceparent"],
)
async def test_enqueue_keeps_the_trace_context_of_its_options(
    app_conn: asyncpg.Connection, client: httpx.AsyncClient, queue: str, options: str
) -> None:
    job_id = await enqueue(app_conn, queue, options=options)
    expected = {"traceparent": TRACEPARENT, "tracestate": "vendor=abc"}
    assert (await lease(client, queue))["trace_context"] == expected
    assert (await client.get(f"/v1/jobs/{job_id}")).json()["trace_context"] == expected
    untraced = await enqueue(app_conn, queue)
    assert (await client.get(f"/v1/jobs/{untraced}")).json()["trace_context"] is None


@pytest.mark.parametrize(
    "options",
    [
        '{"traceparent": "garbage"}',
        '{"trace_context": "x"}',
        '{"trace_context": {"tracestate": "a=b"}}',
        f'{{"trace_context": {{"traceparent": "{TRACEPARENT}", "extra": 1}}}}',
        '{"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}',
    ],
)
async def test_enqueue_refuses_a_malformed_trace_context_naming_the_option(
    app_conn: asyncpg.Connection, queue: str, options: str
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError, match="trace_context"):
        await enqueue(app_conn, queue, options=options)
