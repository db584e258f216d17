"""Enqueue, ack and nack inside the application's own PostgreSQL transaction.

These helpers call the broker's SQL functions (`jobbroker.enqueue`, `jobbroker.ack`,
`jobbroker.nack`) on a connection the application already has, so the job exists (and wakes
waiting workers) only if that transaction commits, and an ack commits with the business write
next to it. The database must be the broker's. Drivers are optional and never imported here:

- `enqueue`, `ack`, `nack`: psycopg 3 `Connection`, SQLAlchemy `Connection` or `Session`;
- `enqueue_async`, `ack_async`, `nack_async`: asyncpg `Connection` (or pool connection), psycopg 3
  `AsyncConnection`, SQLAlchemy `AsyncConnection` or `AsyncSession`.

Arguments are `Client.enqueue`'s. Bad arguments raise the driver's error for SQLSTATE 22023; an
idempotency key held by a job with another type or payload, SQLSTATE 23505.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ._models import Backoff, ErrorInfo

__all__ = ["ack", "ack_async", "enqueue", "enqueue_async", "nack", "nack_async"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ENQUEUE = "enqueue({q}, {t}, CAST(CAST({p} AS text) AS jsonb), CAST(CAST({o} AS text) AS jsonb))"
_ACK = "ack(CAST({i} AS bigint), CAST(CAST({l} AS text) AS uuid), CAST(CAST({r} AS text) AS jsonb))"
_NACK = (
    "nack(CAST({i} AS bigint), CAST(CAST({l} AS text) AS uuid), CAST(CAST({e} AS text) AS jsonb),"
    " CAST({b} AS boolean), CAST({s} AS double precision))"
)


def enqueue(
    conn: Any,
    queue: str,
    type: str,
    payload: Any = None,
    *,
    priority: int | None = None,
    delay_seconds: float | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    backoff: Backoff | Mapping[str, Any] | None = None,
    timeout_seconds: float | None = None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    tags: Sequence[str] | None = None,
    schema: str = "jobbroker",
) -> str:
    """Add one job in `conn`'s transaction; answers its id (an existing job's for a repeated key)."""
    options = _options(
        priority, delay_seconds, run_at, max_attempts, backoff, timeout_seconds, idempotency_key, correlation_id, tags
    )
    args = [queue, type, _json({} if payload is None else payload), _json(options)]
    return str(_run(conn, schema, _ENQUEUE, "qtpo", args))


async def enqueue_async(
    conn: Any,
    queue: str,
    type: str,
    payload: Any = None,
    *,
    priority: int | None = None,
    delay_seconds: float | None = None,
    run_at: datetime | None = None,
    max_attempts: int | None = None,
    backoff: Backoff | Mapping[str, Any] | None = None,
    timeout_seconds: float | None = None,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    tags: Sequence[str] | None = None,
    schema: str = "jobbroker",
) -> str:
    """`enqueue` on an async connection."""
    options = _options(
        priority, delay_seconds, run_at, max_attempts, backoff, timeout_seconds, idempotency_key, correlation_id, tags
    )
    args = [queue, type, _json({} if payload is None else payload), _json(options)]
    return str(await _run_async(conn, schema, _ENQUEUE, "qtpo", args))


def ack(conn: Any, job_id: str | int, lease_id: str, result: Any = None, *, schema: str = "jobbroker") -> bool:
    """Finish a leased job in `conn`'s transaction; False when the lease is stale (nothing changed)."""
    return bool(_run(conn, schema, _ACK, "ilr", [int(job_id), str(lease_id), _json_or_null(result)]))


async def ack_async(
    conn: Any, job_id: str | int, lease_id: str, result: Any = None, *, schema: str = "jobbroker"
) -> bool:
    """`ack` on an async connection."""
    return bool(await _run_async(conn, schema, _ACK, "ilr", [int(job_id), str(lease_id), _json_or_null(result)]))


def nack(
    conn: Any,
    job_id: str | int,
    lease_id: str,
    error: str | Mapping[str, Any] | ErrorInfo | None = None,
    *,
    retryable: bool = True,
    retry_in_seconds: float | None = None,
    schema: str = "jobbroker",
) -> bool:
    """Fail an attempt in `conn`'s transaction; False when the lease is stale (nothing changed)."""
    return bool(_run(conn, schema, _NACK, "ilebs", _nack_args(job_id, lease_id, error, retryable, retry_in_seconds)))


async def nack_async(
    conn: Any,
    job_id: str | int,
    lease_id: str,
    error: str | Mapping[str, Any] | ErrorInfo | None = None,
    *,
    retryable: bool = True,
    retry_in_seconds: float | None = None,
    schema: str = "jobbroker",
) -> bool:
    """`nack` on an async connection."""
    args = _nack_args(job_id, lease_id, error, retryable, retry_in_seconds)
    return bool(await _run_async(conn, schema, _NACK, "ilebs", args))


def _options(
    priority: int | None,
    delay_seconds: float | None,
    run_at: datetime | None,
    max_attempts: int | None,
    backoff: Backoff | Mapping[str, Any] | None,
    timeout_seconds: float | None,
    idempotency_key: str | None,
    correlation_id: str | None,
    tags: Sequence[str] | None,
) -> dict[str, Any]:
    if isinstance(backoff, Backoff):
        backoff = backoff.model_dump(exclude_none=True)
    options = {
        "priority": priority,
        "delay_seconds": delay_seconds,
        "run_at": run_at.isoformat() if run_at is not None else None,
        "max_attempts": max_attempts,
        "backoff": dict(backoff) if backoff is not None else None,
        "timeout_seconds": timeout_seconds,
        "idempotency_key": idempotency_key,
        "correlation_id": correlation_id,
        "tags": list(tags) if tags is not None else None,
    }
    return {k: v for k, v in options.items() if v is not None}


def _nack_args(
    job_id: str | int,
    lease_id: str,
    error: str | Mapping[str, Any] | ErrorInfo | None,
    retryable: bool,
    retry_in_seconds: float | None,
) -> list[Any]:
    if isinstance(error, ErrorInfo):
        error = error.model_dump(exclude_none=True)
    elif isinstance(error, str):
        error = {"message": error}
    return [int(job_id), str(lease_id), _json(dict(error or {})), retryable, retry_in_seconds]


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


def _json_or_null(value: Any) -> str | None:
    return None if value is None else _json(value)


def _statement(conn: Any, schema: str, call: str, names: str) -> tuple[str, str]:
    """The driver family of `conn` and the SELECT in its parameter style."""
    if not _SCHEMA.match(schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    family = type(conn).__module__.split(".")[0]
    if family == "asyncpg":
        marks = [f"${n + 1}" for n in range(len(names))]
    elif family == "psycopg":
        marks = ["%s"] * len(names)
    elif family == "sqlalchemy":
        marks = [f":{name}" for name in names]
    else:
        raise TypeError(f"unsupported connection {type(conn).__qualname__}: asyncpg, psycopg 3 or SQLAlchemy expected")
    return family, f"SELECT {schema}." + call.format(**dict(zip(names, marks, strict=True)))


def _run(conn: Any, schema: str, call: str, names: str, args: list[Any]) -> Any:
    family, sql = _statement(conn, schema, call, names)
    if family == "psycopg":
        return conn.execute(sql, args).fetchone()[0]
    if family == "sqlalchemy":
        from sqlalchemy import text

        return conn.execute(text(sql), dict(zip(names, args, strict=True))).scalar_one()
    raise TypeError(f"{type(conn).__qualname__} is asynchronous: use the *_async helpers")


async def _run_async(conn: Any, schema: str, call: str, names: str, args: list[Any]) -> Any:
    family, sql = _statement(conn, schema, call, names)
    if family == "asyncpg":
        return await conn.fetchval(sql, *args)
    if family == "psycopg":
        cursor = await conn.execute(sql, args)
        return (await cursor.fetchone())[0]
    from sqlalchemy import text

    return (await conn.execute(text(sql), dict(zip(names, args, strict=True)))).scalar_one()
