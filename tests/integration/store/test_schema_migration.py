"""The broker's schema: a new installation makes everything in it, an installation from before the
move (revision 0004, every object in public) is carried over whole, and an application's own
objects in public, a table named job among them, are left alone.

Each test migrates databases of its own: migrations are what is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from jobbroker.app import create_app
from jobbroker.settings import Settings
from jobbroker.store import migrate
from jobbroker.store.db import plain_url

TABLES = ("queue", "job", "subscription", "schedule")
FUNCTIONS = {
    "job_failure_state",
    "job_backoff_s",
    "job_append_error",
    "job_notify_ready",
    "job_notify_ready_row",
    "subscription_notify_changed",
}
ACTIVE_LEASE = "6f1c1e0a-8a55-4a4e-9d0b-3c4b8b3f2a11"

# Jobs in every state, written with the columns revision 0004 has, in public as it was then.
LEGACY_ROWS = f"""
INSERT INTO queue (name, paused, max_concurrency, rate_limit_per_s, default_max_attempts, default_backoff,
                   retention_s, dead_retention_s)
VALUES ('limited', false, 3, 10, 7, '{{"initial_seconds": 2, "max_seconds": 60, "multiplier": 3, "jitter": 0}}',
        3600, 7200),
       ('stopped', true, NULL, NULL, NULL, NULL, NULL, NULL);

INSERT INTO job (queue, type, payload, state, priority, attempts, max_attempts, backoff_initial_s, backoff_max_s,
                 backoff_multiplier, backoff_jitter, timeout_s, run_at, started_at, finished_at, lease_id,
                 lease_timeout_s, lease_expires_at, worker_id, idempotency_key, correlation_id, tags, result,
                 errors, progress, cancel_requested)
VALUES
  ('main', 'ready', '{{"n": 123456789012345678901234567890}}', 'pending', 0, 0, 5, 1, 60, 2, 0, 30,
   now() - interval '1 minute', NULL, NULL, NULL, NULL, NULL, NULL, 'k-ready', 'order-1', '{{a,b}}', NULL, '[]',
   NULL, false),
  ('main', 'later', '[1, 2]', 'pending', 5, 0, 5, 1, 60, 2, 0, 30,
   now() + interval '1 hour', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, '[]', NULL, false),
  ('main', 'running', '"text"', 'active', 0, 1, 5, 1, 60, 2, 0, 30,
   now() - interval '1 minute', now(), NULL, '{ACTIVE_LEASE}', 600, now() + interval '10 minutes', 'w1', NULL,
   NULL, '{{}}', NULL, '[]', '{{"done": 0.5}}', false),
  ('main', 'flaky', 'null', 'retrying', 0, 2, 5, 1, 60, 2, 0, 30,
   now() - interval '1 second', now() - interval '2 minutes', NULL, gen_random_uuid(), 30, NULL, 'w2', NULL,
   NULL, '{{}}', NULL,
   '[{{"attempt": 1, "at": "2026-01-01T00:00:00Z", "worker_id": "w2", "error": {{"message": "boom"}}}}]',
   NULL, false),
  ('main', 'done', '{{}}', 'succeeded', 0, 1, 5, 1, 60, 2, 0, 30,
   now() - interval '1 hour', now() - interval '59 minutes', now() - interval '58 minutes', gen_random_uuid(),
   30, NULL, 'w1', 'k-done', NULL, '{{}}', '{{"ok": true}}', '[]', NULL, false),
  ('main', 'broken', '{{}}', 'dead', 0, 5, 5, 1, 60, 2, 0, 30,
   now() - interval '1 hour', now() - interval '59 minutes', now() - interval '58 minutes', gen_random_uuid(),
   30, NULL, 'w3', NULL, NULL, '{{}}', NULL,
   '[{{"attempt": 5, "at": "2026-01-01T00:00:00Z", "worker_id": "w3", "error": {{"message": "fatal"}}}}]',
   NULL, false),
  ('main', 'dropped', '{{}}', 'cancelled', 0, 0, 5, 1, 60, 2, 0, 30,
   now(), NULL, now(), NULL, NULL, NULL, NULL, NULL, NULL, '{{}}', NULL, '[]', NULL, false),
  ('main', 'stopping', '{{}}', 'active', 0, 1, 5, 1, 60, 2, 0, 30,
   now() - interval '1 minute', now(), NULL, gen_random_uuid(), 600, now() + interval '10 minutes', 'w4', NULL,
   NULL, '{{}}', NULL, '[]', NULL, true);

INSERT INTO subscription (queue, url, secret, max_concurrency, timeout_s, paused, description)
VALUES ('pushed', 'http://127.0.0.1:9/hook', 'whsec_c2VjcmV0', 2, 5, true, 'kept');

INSERT INTO schedule (name, cron, timezone, queue, type, payload, priority, max_attempts, next_run_at)
VALUES ('nightly', '0 3 * * *', 'Europe/Paris', 'reports', 'build', '{{"x": 1}}', 2, 3, now() + interval '1 day');
"""


@contextlib.asynccontextmanager
async def broker(database_url: str, schema: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=database_url, db={"schema": schema}, push={"enabled": False}))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as c:
        yield c


@contextlib.asynccontextmanager
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def snapshot(conn: asyncpg.Connection, schema: str) -> dict[str, list[str]]:
    """Every row of every broker table, as JSON text."""
    return {
        table: [r[0] for r in await conn.fetch(f"SELECT CAST(to_jsonb(t) AS text) FROM {schema}.{table} t ORDER BY 1")]
        for table in TABLES
    }


def only_columns_of(after: dict[str, list[str]], before: dict[str, list[str]]) -> dict[str, list[str]]:
    """`after` without the columns later migrations added (absent from every row of `before`)."""
    trimmed = {}
    for table, rows in after.items():
        old = {key for row in before[table] for key in json.loads(row)}
        kept = [{k: v for k, v in json.loads(row).items() if k in old or not old} for row in rows]
        trimmed[table] = sorted(json.dumps(row, sort_keys=True) for row in kept)
    return trimmed


async def objects_in(conn: asyncpg.Connection, schema: str) -> tuple[set[str], set[str]]:
    """Names of the relations (tables, indexes, sequences) and of the functions in a schema."""
    relations = await conn.fetch(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1", schema
    )
    functions = await conn.fetch(
        "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1", schema
    )
    return {r[0] for r in relations}, {r[0] for r in functions}


async def long_poll_wakes(client: httpx.AsyncClient, queue: str) -> float:
    """Seconds from an enqueue to the answer of a lease that was waiting for it."""
    waiting = asyncio.create_task(
        client.post(f"/v1/queues/{queue}/leases", json={"worker_id": "w", "wait_seconds": 10}, timeout=15)
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.monotonic()
    made = await client.post(f"/v1/queues/{queue}/jobs", json={"type": "t"})
    answer = await waiting
    assert [j["id"] for j in answer.json()["jobs"]] == [made.json()["id"]]
    return time.monotonic() - started


@pytest.mark.parametrize("schema", ["jobbroker", "jobs_custom"])
async def test_an_installation_from_before_the_move_is_carried_over_whole(
    empty_database: Callable[[], Awaitable[str]], schema: str
) -> None:
    url = await empty_database()
    await migrate.upgrade(url, "public", "0004")
    async with connection(url) as conn:
        await conn.execute(LEGACY_ROWS)
        before = await snapshot(conn, "public")
        max_id = await conn.fetchval("SELECT max(id) FROM public.job")
    assert [len(rows) for rows in before.values()] == [2, 8, 1, 1]

    await migrate.upgrade(url, schema)

    async with connection(url) as conn:
        assert only_columns_of(await snapshot(conn, schema), before) == only_columns_of(before, before)
        assert await objects_in(conn, "public") == (set(), set())
        relations, functions = await objects_in(conn, schema)
        assert {*TABLES, "alembic_version", "job_id_seq", "job_ready", "job_idempotency", "schedule_due"} <= relations
        assert functions >= FUNCTIONS
        assert await conn.fetchval(f"SELECT version_num FROM {schema}.alembic_version") == migrate.head_revision()

    async with broker(url, schema) as client:
        assert (await client.get("/readyz")).status_code == 200
        leased = (await client.post("/v1/queues/main/leases", json={"worker_id": "w", "max_jobs": 10})).json()["jobs"]
        assert sorted(j["type"] for j in leased) == ["flaky", "ready"]
        running = (await client.get("/v1/jobs?state=active&type=running")).json()["items"][0]
        acked = await client.post(f"/v1/jobs/{running['id']}/ack", json={"lease_id": ACTIVE_LEASE, "result": 1})
        assert acked.status_code == 200 and acked.json()["state"] == "succeeded"
        # The same job again (an idempotency key with another payload would be a conflict).
        same = {"type": "ready", "payload": {"n": 123456789012345678901234567890}, "idempotency_key": "k-ready"}
        again = await client.post("/v1/queues/main/jobs", json=same)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        fresh = (await client.post("/v1/queues/main/jobs", json={"type": "new"})).json()
        assert int(fresh["id"]) > max_id
        assert (await client.get("/v1/queues/limited")).json()["max_concurrency"] == 3
        assert (await client.get("/v1/schedules/nightly")).json()["timezone"] == "Europe/Paris"
        assert [s["description"] for s in (await client.get("/v1/subscriptions")).json()["items"]] == ["kept"]
        assert await long_poll_wakes(client, "woken") < 1.0


async def test_an_application_job_table_in_public_coexists(empty_database: Callable[[], Awaitable[str]]) -> None:
    url = await empty_database()
    async with connection(url) as conn:
        # The application's own tables, alembic's version table among them.
        await conn.execute(
            "CREATE TABLE public.job (id serial PRIMARY KEY, title text NOT NULL);"
            "INSERT INTO public.job (title) VALUES ('plumber');"
            "CREATE TABLE public.alembic_version (version_num varchar(32) PRIMARY KEY);"
            "INSERT INTO public.alembic_version VALUES ('0001');"
        )
        application = await objects_in(conn, "public")

    await migrate.upgrade(url)
    await migrate.upgrade(url)  # a second run (another replica starting) changes nothing

    async with connection(url) as conn:
        assert await objects_in(conn, "public") == application
        assert await conn.fetch("SELECT id, title FROM public.job") == [(1, "plumber")]
        assert await conn.fetchval("SELECT version_num FROM public.alembic_version") == "0001"
        relations, functions = await objects_in(conn, "jobbroker")
        assert {*TABLES, "alembic_version"} <= relations and functions >= FUNCTIONS
    async with broker(url, "jobbroker") as client:
        assert (await client.get("/readyz")).status_code == 200
        made = (await client.post("/v1/queues/q/jobs", json={"type": "t"})).json()
        leased = (await client.post("/v1/queues/q/leases", json={"worker_id": "w"})).json()["jobs"]
        assert [j["id"] for j in leased] == [made["id"]]
        assert (await client.post(f"/v1/jobs/{made['id']}/ack", json={"lease_id": leased[0]["lease_id"]})).is_success
        assert await long_poll_wakes(client, "woken") < 1.0
    async with connection(url) as conn:
        assert await conn.fetchval("SELECT count(*) FROM public.job") == 1
        assert await conn.fetchval("SELECT count(*) FROM jobbroker.job") == 2


async def test_a_schema_of_another_name_holds_everything(empty_database: Callable[[], Awaitable[str]]) -> None:
    url = await empty_database()
    await migrate.upgrade(url, "jobs_elsewhere")
    async with connection(url) as conn:
        assert await conn.fetchval("SELECT to_regnamespace('jobbroker')") is None
        assert await objects_in(conn, "public") == (set(), set())
        relations, functions = await objects_in(conn, "jobs_elsewhere")
        assert {*TABLES, "alembic_version"} <= relations and functions >= FUNCTIONS
    async with broker(url, "jobs_elsewhere") as client:
        assert (await client.get("/readyz")).status_code == 200
        await client.post("/v1/queues/q/jobs", json={"type": "t"})
        assert (await client.get("/v1/queues/q")).json()["counts"]["pending"] == 1
    # The same database read as the default schema is not a broker's: readiness says so.
    async with broker_without_migrations(url) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["schema_current"] is False


@contextlib.asynccontextmanager
async def broker_without_migrations(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings: dict[str, Any] = {"db": {"migrate_on_start": False}, "push": {"enabled": False}}
    app = create_app(Settings(database_url=database_url, **settings))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://b") as c:
        yield c
