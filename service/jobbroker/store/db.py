"""The connection pool, its JSON codecs, and the translation of driver failures into domain errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from jobbroker.core import jsontext
from jobbroker.core.errors import Conflict, DatabaseUnavailable, InvalidInput
from jobbroker.settings import DbSettings

# Failures that mean "the database is not reachable right now", as opposed to a bad statement.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)

# A value the database will not take: a number out of range, text it cannot store, a check that
# fails. Their messages can quote the values (a check's detail holds the whole failing row, secrets
# included), so the answer never repeats them; `from exc` keeps them for debugging only.
REFUSED = (
    asyncpg.DataError,
    asyncpg.exceptions._base.DataError,  # asyncpg's own: a parameter it cannot encode
    asyncpg.CheckViolationError,
    asyncpg.NotNullViolationError,
    asyncpg.ProgramLimitExceededError,
    asyncpg.InvalidTextRepresentationError,
    UnicodeError,
    OverflowError,
)


def plain_url(url: str) -> str:
    """The libpq form asyncpg wants, whatever SQLAlchemy driver suffix the user wrote."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    return urlunsplit(parts._replace(scheme="postgresql" if scheme == "postgres" else scheme))


def sqlalchemy_url(url: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Binary jsonb is a version byte followed by the text. Values read stay that text, embedded as it
    # is in answers (exact, and no decoding on the hot path); see core/jsontext.py.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + jsontext.dumps(value),
        decoder=lambda data: orjson.Fragment(data[1:]),
        format="binary",
    )


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pooled sessions never change state (no SET, LISTEN or session advisory locks; LISTEN has its
    own connection), so a release skips asyncpg's reset query: one round trip less per request.
    asyncpg still rolls back a transaction left open."""


# Every session plans each statement for the table as it is now, without JIT.
# A queue's table goes from empty to a backlog of millions and back. A prepared statement's cached
# generic plan is made once, at whatever size the table had then: the reaper's, planned on an
# empty table, joined the table to itself by two sequential scans and, at 20,000 rows, ran for
# seconds on every tick while no lease had expired. Planning anew costs a statement 0.07-0.23 ms of
# Postgres CPU, shared by every job in a batch or a coalesced call.
# JIT compiles a statement whose estimated cost passes jit_above_cost, at 50-400 ms of CPU each,
# for statements that run in well under a millisecond.
# A statement that fails is logged by Postgres without its parameters (the default, pinned here
# against a server-wide change): they can hold payloads and signing secrets.
SESSION = {"plan_cache_mode": "force_custom_plan", "jit": "off", "log_parameter_max_length_on_error": "0"}
# Lease sessions (see Database) also never sort, incrementally or not.
LEASE_SESSION = {**SESSION, "enable_sort": "off", "enable_incremental_sort": "off"}
DEFAULT_SCHEMA = DbSettings().schema_name


def in_schema(server_settings: dict[str, str], schema: str) -> dict[str, str]:
    """Session settings whose search_path is the broker's schema alone, so that the unqualified
    names of store/sql/*.sql are the broker's objects, never an application's (pg_catalog, always
    searched first, keeps the built-ins)."""
    return {**server_settings, "search_path": schema}


async def connect(
    url: str, server_settings: dict[str, str] = SESSION, schema: str = DEFAULT_SCHEMA
) -> asyncpg.Connection:
    """One dedicated connection (LISTEN needs one that no pooler shares)."""
    conn = await asyncpg.connect(plain_url(url), server_settings=in_schema(server_settings, schema))
    await _init_connection(conn)
    return conn


class Database:
    """Two pools: one for leases, whose sessions never sort, and one for everything else.

    A lease must read the ready index in its order and stop at the jobs it takes. The planner only
    does so while it believes many jobs are ready; a queue's statistics are stale by nature, and
    once analyzed while no job was ready (every job finished, a backlog building since), it prefers
    to fetch the ready jobs by another index and sort them all to take the first few: measured, 8.5
    instead of 0.5 ms for one job behind a backlog of 13,500, growing with the backlog. With sorting
    disabled in the lease sessions, the ordered index scan is the only plan left; the sorts a lease
    statement cannot avoid (dealing a coalesced lease's few rows out) still run. Other statements
    keep the planner's free hand. Every session plans each statement anew and without JIT (see
    SESSION): a disabled sort alone adds enough to a plan's estimated cost to have it compiled.

    Lease sessions commit without waiting for the WAL flush (db.lease_synchronous_commit, "off" by
    default). A lease that a crash loses leaves its job as it was before, ready: it is delivered
    again, which at-least-once delivery allows, and the worker's ack or nack of the lost lease
    gets lease_lost. Nothing acknowledged is lost: enqueues, acks and nacks run on the other pool
    and wait for their flush, which covers every earlier WAL record, the lease's included.
    """

    def __init__(self, url: str, settings: DbSettings) -> None:
        self.url = plain_url(url)
        self.schema = settings.schema_name
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._lease_pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        schema = self._settings.schema_name
        self._pool = await self._create_pool(
            self._settings.pool_min_size, self._settings.pool_max_size, server_settings=in_schema(SESSION, schema)
        )
        self._lease_pool = await self._create_pool(
            min(self._settings.pool_min_size, self._settings.lease_pool_max_size),
            self._settings.lease_pool_max_size,
            server_settings=in_schema(
                {**LEASE_SESSION, "synchronous_commit": self._settings.lease_synchronous_commit}, schema
            ),
        )

    async def _create_pool(self, min_size: int, max_size: int, **options: Any) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            statement_cache_size=self._settings.statement_cache_size,
            command_timeout=self._settings.command_timeout_s,
            init=_init_connection,
            reset=_keep_session,
            **options,
        )

    async def close(self) -> None:
        for pool in (self._pool, self._lease_pool):
            if pool is not None:
                await pool.close()

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return self._acquire(self._pool)

    def lease_connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection for lease statements (see the class docstring)."""
        return self._acquire(self._lease_pool)

    @asynccontextmanager
    async def _acquire(self, pool: asyncpg.Pool | None) -> AsyncIterator[asyncpg.Connection]:
        if pool is None:
            raise DatabaseUnavailable("the database pool is not open")
        try:
            async with pool.acquire(timeout=self._settings.command_timeout_s) as conn:
                yield conn
        except REFUSED as exc:  # before UNAVAILABLE: asyncpg's own DataError is an InterfaceError
            raise InvalidInput("a value was refused by the database (out of range or not storable)") from exc
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict("the change conflicts with the stored data") from exc
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn
